package s3api_test

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"maps"
	"mime/multipart"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/nimbus-run/nimbus/internal/data"
	"github.com/nimbus-run/nimbus/internal/keys"
	"github.com/nimbus-run/nimbus/internal/node"
	"github.com/nimbus-run/nimbus/internal/node/nodetest"
)

// createBuckets creates buckets through c.
func createBuckets(t *testing.T, c *s3.Client, names ...string) {
	t.Helper()
	for _, b := range names {
		if _, err := c.CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: aws.String(b)}); err != nil {
			t.Fatalf("create bucket %s: %v", b, err)
		}
	}
}

// objectBody reads an object whole through c; an error is the SDK's
// (NoSuchKey, ...).
func objectBody(t *testing.T, c *s3.Client, bucket, key string) (string, error) {
	t.Helper()
	out, err := c.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		return "", err
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	return string(b), err
}

// TestS3UnsupportedSubresources: a request for an S3 feature Nimbus does
// not have (tags, ACLs, CORS and policy documents, versions, ...) names
// it in a subresource of the query, and is refused with 501
// NotImplemented, never taken for the plain request it looks like:
// tagging an object must not overwrite it with the tagging document,
// deleting a bucket's CORS must not delete the bucket.
func TestS3UnsupportedSubresources(t *testing.T) {
	_, c, _ := startS3(t)
	ctx := context.Background()
	createBuckets(t, c, "full", "empty")
	body := []byte("the object's own bytes")
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("full"), Key: aws.String("k"), Body: bytes.NewReader(body)}); err != nil {
		t.Fatal(err)
	}
	tags := &types.Tagging{TagSet: []types.Tag{{Key: aws.String("team"), Value: aws.String("data")}}}
	for _, tc := range []struct {
		name string
		call func() error
	}{
		{"PutObjectTagging", func() error {
			_, err := c.PutObjectTagging(ctx, &s3.PutObjectTaggingInput{Bucket: aws.String("full"), Key: aws.String("k"), Tagging: tags})
			return err
		}},
		{"DeleteObjectTagging", func() error {
			_, err := c.DeleteObjectTagging(ctx, &s3.DeleteObjectTaggingInput{Bucket: aws.String("full"), Key: aws.String("k")})
			return err
		}},
		{"PutObjectAcl", func() error {
			_, err := c.PutObjectAcl(ctx, &s3.PutObjectAclInput{Bucket: aws.String("full"), Key: aws.String("k"), ACL: types.ObjectCannedACLPublicRead})
			return err
		}},
		{"GetObject of a version", func() error {
			_, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("full"), Key: aws.String("k"), VersionId: aws.String("3HL4kqtJlcpXroDTDmJ-rmSpXd3dIbrHY")})
			return err
		}},
		{"DeleteObject of a version", func() error {
			_, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String("full"), Key: aws.String("k"), VersionId: aws.String("3HL4kqtJlcpXroDTDmJ-rmSpXd3dIbrHY")})
			return err
		}},
		{"DeleteBucketCors", func() error {
			_, err := c.DeleteBucketCors(ctx, &s3.DeleteBucketCorsInput{Bucket: aws.String("empty")})
			return err
		}},
		{"DeleteBucketPolicy", func() error {
			_, err := c.DeleteBucketPolicy(ctx, &s3.DeleteBucketPolicyInput{Bucket: aws.String("empty")})
			return err
		}},
		{"PutBucketPolicy", func() error {
			_, err := c.PutBucketPolicy(ctx, &s3.PutBucketPolicyInput{Bucket: aws.String("empty"), Policy: aws.String(`{"Version":"2012-10-17","Statement":[]}`)})
			return err
		}},
		{"PutBucketVersioning", func() error {
			_, err := c.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{Bucket: aws.String("empty"), VersioningConfiguration: &types.VersioningConfiguration{Status: types.BucketVersioningStatusEnabled}})
			return err
		}},
		{"CopyObject of a version", func() error {
			_, err := c.CopyObject(ctx, &s3.CopyObjectInput{Bucket: aws.String("full"), Key: aws.String("k"), CopySource: aws.String("full/k?versionId=3HL4kqtJlcpXroDTDmJ-rmSpXd3dIbrHY")})
			return err
		}},
		{"ListObjectVersions", func() error {
			_, err := c.ListObjectVersions(ctx, &s3.ListObjectVersionsInput{Bucket: aws.String("full")})
			return err
		}},
	} {
		if err := tc.call(); apiCode(err) != "NotImplemented" {
			t.Errorf("%s: %v, want NotImplemented", tc.name, err)
		}
	}
	if got, err := objectBody(t, c, "full", "k"); err != nil || got != string(body) {
		t.Fatalf("the object holds %q (%v) after the refused requests, want %q", got, err, body)
	}
	if _, err := c.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String("empty")}); err != nil {
		t.Fatalf("the empty bucket after the refused requests: %v", err)
	}
	// Versioning was never enabled, which a client may ask.
	v, err := c.GetBucketVersioning(ctx, &s3.GetBucketVersioningInput{Bucket: aws.String("full")})
	if err != nil || v.Status != "" {
		t.Fatalf("GetBucketVersioning = %+v, %v; want no status", v, err)
	}
	// The version S3 names an object of an unversioned bucket by is "null".
	if _, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("full"), Key: aws.String("k"), VersionId: aws.String("null")}); err != nil {
		t.Fatalf("HeadObject of version null: %v", err)
	}
	if _, err := c.CopyObject(ctx, &s3.CopyObjectInput{Bucket: aws.String("full"), Key: aws.String("k2"), CopySource: aws.String("full/k?versionId=null")}); err != nil {
		t.Fatalf("CopyObject of version null: %v", err)
	}
}

// TestS3ListMultipartUploads lists the uploads in progress with the AWS
// SDK: by key and then creation, under a prefix, rolled up by a delimiter,
// page by page; completed and aborted uploads are gone from the list.
func TestS3ListMultipartUploads(t *testing.T) {
	_, c, _ := startS3(t)
	ctx := context.Background()
	createBuckets(t, c, "media", "other")
	create := func(bucket, key string) string {
		t.Helper()
		u, err := c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String(bucket), Key: aws.String(key)})
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Millisecond) // distinct creation times
		return *u.UploadId
	}
	// Created out of key order; "b.mov" twice.
	ids := map[string]string{}
	for _, k := range []string{"c/2.mov", "b.mov", "a/1.mov", "c/1.mov"} {
		ids[k] = create("media", k)
	}
	second := create("media", "b.mov")
	create("other", "b.mov")

	list := func(in *s3.ListMultipartUploadsInput) (keys []string, prefixes []string, out *s3.ListMultipartUploadsOutput) {
		t.Helper()
		in.Bucket = aws.String("media")
		out, err := c.ListMultipartUploads(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		for _, u := range out.Uploads {
			keys = append(keys, *u.Key+"@"+*u.UploadId)
		}
		for _, p := range out.CommonPrefixes {
			prefixes = append(prefixes, *p.Prefix)
		}
		return keys, prefixes, out
	}
	all := []string{"a/1.mov@" + ids["a/1.mov"], "b.mov@" + ids["b.mov"], "b.mov@" + second, "c/1.mov@" + ids["c/1.mov"], "c/2.mov@" + ids["c/2.mov"]}
	if keys, _, out := list(&s3.ListMultipartUploadsInput{}); strings.Join(keys, " ") != strings.Join(all, " ") || aws.ToBool(out.IsTruncated) {
		t.Fatalf("uploads %v (truncated %v), want %v", keys, aws.ToBool(out.IsTruncated), all)
	}
	if keys, _, _ := list(&s3.ListMultipartUploadsInput{Prefix: aws.String("c/")}); strings.Join(keys, " ") != strings.Join(all[3:], " ") {
		t.Fatalf("uploads under c/: %v", keys)
	}
	if keys, prefixes, _ := list(&s3.ListMultipartUploadsInput{Delimiter: aws.String("/")}); strings.Join(keys, " ") != strings.Join(all[1:3], " ") || strings.Join(prefixes, " ") != "a/ c/" {
		t.Fatalf("with a delimiter: uploads %v, prefixes %v", keys, prefixes)
	}
	// Pages of two, through the SDK's markers: the page boundary falls
	// between the two uploads of b.mov.
	var paged []string
	in := &s3.ListMultipartUploadsInput{MaxUploads: aws.Int32(2)}
	for pages := 0; ; pages++ {
		if pages == 5 {
			t.Fatal("paging does not end")
		}
		keys, _, out := list(in)
		paged = append(paged, keys...)
		if !aws.ToBool(out.IsTruncated) {
			break
		}
		in.KeyMarker, in.UploadIdMarker = out.NextKeyMarker, out.NextUploadIdMarker
	}
	if strings.Join(paged, " ") != strings.Join(all, " ") {
		t.Fatalf("paged uploads %v, want %v", paged, all)
	}
	// Pages of one with a delimiter: each prefix once.
	var seen []string
	in = &s3.ListMultipartUploadsInput{MaxUploads: aws.Int32(1), Delimiter: aws.String("/")}
	for pages := 0; ; pages++ {
		if pages == 6 {
			t.Fatal("paging does not end")
		}
		keys, prefixes, out := list(in)
		seen = append(append(seen, prefixes...), keys...)
		if !aws.ToBool(out.IsTruncated) {
			break
		}
		in.KeyMarker, in.UploadIdMarker = out.NextKeyMarker, out.NextUploadIdMarker
	}
	if want := "a/ " + strings.Join(all[1:3], " ") + " c/"; strings.Join(seen, " ") != want {
		t.Fatalf("paged with a delimiter: %v, want %s", seen, want)
	}

	if _, err := c.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: aws.String("media"), Key: aws.String("b.mov"), UploadId: aws.String(second)}); err != nil {
		t.Fatal(err)
	}
	part, err := c.UploadPart(ctx, &s3.UploadPartInput{Bucket: aws.String("media"), Key: aws.String("a/1.mov"), UploadId: aws.String(ids["a/1.mov"]), PartNumber: aws.Int32(1), Body: strings.NewReader("tiny")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket: aws.String("media"), Key: aws.String("a/1.mov"), UploadId: aws.String(ids["a/1.mov"]),
		MultipartUpload: &types.CompletedMultipartUpload{Parts: []types.CompletedPart{{PartNumber: aws.Int32(1), ETag: part.ETag}}},
	}); err != nil {
		t.Fatal(err)
	}
	if keys, _, _ := list(&s3.ListMultipartUploadsInput{}); strings.Join(keys, " ") != strings.Join([]string{all[1], all[3], all[4]}, " ") {
		t.Fatalf("after an abort and a completion: %v", keys)
	}
	if _, err := c.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: aws.String("missing")}); apiCode(err) != "NoSuchBucket" {
		t.Fatalf("uploads of a missing bucket: %v", err)
	}
}

// TestS3UnkeptPromises: a write that asks for server-side encryption, an
// object lock, tags or an append is refused with 501 and stores nothing, since Nimbus
// would not keep the promise; a canned ACL and a storage class are
// accepted and ignored.
func TestS3UnkeptPromises(t *testing.T) {
	_, c, _ := startS3(t)
	ctx := context.Background()
	createBuckets(t, c, "vault")
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("vault"), Key: aws.String("src"), Body: strings.NewReader("source")}); err != nil {
		t.Fatal(err)
	}
	put := func(in *s3.PutObjectInput) error {
		in.Bucket, in.Key, in.Body = aws.String("vault"), aws.String("k"), strings.NewReader("secret")
		_, err := c.PutObject(ctx, in)
		return err
	}
	key := bytes.Repeat([]byte{7}, 32)
	keyMD5 := md5.Sum(key)
	until := time.Now().Add(24 * time.Hour)
	for _, tc := range []struct {
		name string
		call func() error
	}{
		{"SSE-S3", func() error { return put(&s3.PutObjectInput{ServerSideEncryption: types.ServerSideEncryptionAes256}) }},
		{"SSE-KMS", func() error {
			return put(&s3.PutObjectInput{ServerSideEncryption: types.ServerSideEncryptionAwsKms, SSEKMSKeyId: aws.String("alias/mine")})
		}},
		{"SSE-C", func() error {
			return put(&s3.PutObjectInput{SSECustomerAlgorithm: aws.String("AES256"), SSECustomerKey: aws.String(base64.StdEncoding.EncodeToString(key)),
				SSECustomerKeyMD5: aws.String(base64.StdEncoding.EncodeToString(keyMD5[:]))})
		}},
		{"object lock", func() error {
			return put(&s3.PutObjectInput{ObjectLockMode: types.ObjectLockModeCompliance, ObjectLockRetainUntilDate: &until})
		}},
		{"legal hold", func() error {
			return put(&s3.PutObjectInput{ObjectLockLegalHoldStatus: types.ObjectLockLegalHoldStatusOn})
		}},
		{"tags", func() error { return put(&s3.PutObjectInput{Tagging: aws.String("team=data")}) }},
		{"append", func() error { return put(&s3.PutObjectInput{WriteOffsetBytes: aws.Int64(0)}) }},
		{"multipart with SSE", func() error {
			_, err := c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String("vault"), Key: aws.String("k"), ServerSideEncryption: types.ServerSideEncryptionAes256})
			return err
		}},
		{"copy with new tags", func() error {
			_, err := c.CopyObject(ctx, &s3.CopyObjectInput{Bucket: aws.String("vault"), Key: aws.String("k"), CopySource: aws.String("vault/src"),
				TaggingDirective: types.TaggingDirectiveReplace, Tagging: aws.String("team=data")})
			return err
		}},
		{"bucket with object lock", func() error {
			_, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("locked"), ObjectLockEnabledForBucket: aws.Bool(true)})
			return err
		}},
	} {
		if err := tc.call(); apiCode(err) != "NotImplemented" {
			t.Errorf("%s: %v, want NotImplemented", tc.name, err)
		}
	}
	if _, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("vault"), Key: aws.String("k")}); apiCode(err) != "NotFound" {
		t.Fatalf("after the refused writes the key holds an object: %v", err)
	}
	if _, err := c.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String("locked")}); apiCode(err) != "NotFound" {
		t.Fatalf("the bucket with object lock was created: %v", err)
	}
	if err := put(&s3.PutObjectInput{ACL: types.ObjectCannedACLPrivate, StorageClass: types.StorageClassStandardIa}); err != nil {
		t.Fatalf("a put with a canned ACL and a storage class: %v", err)
	}
}

// TestS3ConditionalDeletes: DeleteObject and DeleteObjects with If-Match
// (S3's conditional deletes, since 2025) delete only the object with that
// ETag, or with "*" only an object that exists; a condition Nimbus does
// not check (a directory bucket's size or time, a version) is refused
// rather than ignored.
func TestS3ConditionalDeletes(t *testing.T) {
	_, c, _ := startS3(t)
	ctx := context.Background()
	createBuckets(t, c, "docs")
	etags := map[string]string{}
	for _, k := range []string{"a", "b", "c", "d", "e"} {
		out, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("docs"), Key: aws.String(k), Body: strings.NewReader("body of " + k)})
		if err != nil {
			t.Fatal(err)
		}
		etags[k] = *out.ETag
	}
	del := func(key string, in *s3.DeleteObjectInput) error {
		in.Bucket, in.Key = aws.String("docs"), aws.String(key)
		_, err := c.DeleteObject(ctx, in)
		return err
	}
	exists := func(key string) bool {
		_, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("docs"), Key: aws.String(key)})
		return err == nil
	}
	if err := del("a", &s3.DeleteObjectInput{IfMatch: aws.String(etags["b"])}); apiCode(err) != "PreconditionFailed" || !exists("a") {
		t.Fatalf("delete with another ETag: %v (object there: %v)", err, exists("a"))
	}
	if err := del("a", &s3.DeleteObjectInput{IfMatchSize: aws.Int64(9)}); apiCode(err) != "NotImplemented" || !exists("a") {
		t.Fatalf("delete if of a size: %v", err)
	}
	if err := del("a", &s3.DeleteObjectInput{IfMatch: aws.String(etags["a"])}); err != nil || exists("a") {
		t.Fatalf("delete with its ETag: %v (object there: %v)", err, exists("a"))
	}
	if err := del("a", &s3.DeleteObjectInput{IfMatch: aws.String("*")}); apiCode(err) != "NoSuchKey" {
		t.Fatalf("delete if it exists, of a deleted object: %v", err)
	}
	if err := del("b", &s3.DeleteObjectInput{IfMatch: aws.String("*")}); err != nil || exists("b") {
		t.Fatalf("delete if it exists: %v", err)
	}
	if err := del("never", &s3.DeleteObjectInput{}); err != nil {
		t.Fatalf("unconditional delete of nothing: %v", err)
	}

	out, err := c.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: aws.String("docs"), Delete: &types.Delete{Objects: []types.ObjectIdentifier{
		{Key: aws.String("c"), ETag: aws.String(etags["c"])},
		{Key: aws.String("d"), ETag: aws.String(etags["c"])},
		{Key: aws.String("e")},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	var deleted, failed []string
	for _, d := range out.Deleted {
		deleted = append(deleted, *d.Key)
	}
	for _, e := range out.Errors {
		failed = append(failed, *e.Key+":"+*e.Code)
	}
	if strings.Join(deleted, ",") != "c,e" || strings.Join(failed, ",") != "d:PreconditionFailed" || exists("c") || !exists("d") || exists("e") {
		t.Fatalf("batch delete: deleted %v, failed %v", deleted, failed)
	}
	_, err = c.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: aws.String("docs"), Delete: &types.Delete{Objects: []types.ObjectIdentifier{
		{Key: aws.String("d"), VersionId: aws.String("3HL4kqtJlcpXroDTDmJ-rmSpXd3dIbrHY")},
	}}})
	if apiCode(err) != "NotImplemented" || !exists("d") {
		t.Fatalf("batch delete of a version: %v (object there: %v)", err, exists("d"))
	}
}

// TestS3ConditionalCopy: a CopyObject with If-None-Match: * or If-Match
// writes its destination on those conditions, as a PutObject does (the
// SDK does not model them yet: they are sent as headers).
func TestS3ConditionalCopy(t *testing.T) {
	_, c, _ := startS3(t)
	ctx := context.Background()
	createBuckets(t, c, "src")
	for _, k := range []string{"a", "b"} {
		if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("src"), Key: aws.String(k), Body: strings.NewReader("body of " + k)}); err != nil {
			t.Fatal(err)
		}
	}
	cp := func(from, to, header, value string) error {
		_, err := c.CopyObject(ctx, &s3.CopyObjectInput{Bucket: aws.String("src"), Key: aws.String(to), CopySource: aws.String("src/" + from)},
			s3.WithAPIOptions(smithyhttp.AddHeaderValue(header, value)))
		return err
	}
	read := func(key string) string {
		t.Helper()
		b, err := objectBody(t, c, "src", key)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	if err := cp("a", "b", "If-None-Match", "*"); apiCode(err) != "PreconditionFailed" || read("b") != "body of b" {
		t.Fatalf("copy over an object with If-None-Match: *: %v", err)
	}
	if err := cp("a", "new", "If-None-Match", "*"); err != nil || read("new") != "body of a" {
		t.Fatalf("copy to a new key with If-None-Match: *: %v", err)
	}
	if err := cp("b", "new", "If-Match", `"0123"`); apiCode(err) != "PreconditionFailed" || read("new") != "body of a" {
		t.Fatalf("copy over another ETag with If-Match: %v", err)
	}
	head, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("src"), Key: aws.String("new")})
	if err != nil {
		t.Fatal(err)
	}
	if err := cp("b", "new", "If-Match", *head.ETag); err != nil || read("new") != "body of b" {
		t.Fatalf("copy over its ETag with If-Match: %v", err)
	}
}

// TestS3CompletionChecksums: a CompleteMultipartUpload may declare the
// object's CRC (FULL_OBJECT), the checksum of its parts' checksums
// (COMPOSITE) or its size (x-amz-mp-object-size); each is checked before
// the object is visible, and a mismatch stores nothing and leaves the
// upload to be completed.
func TestS3CompletionChecksums(t *testing.T) {
	_, c, _ := startS3(t)
	ctx := context.Background()
	createBuckets(t, c, "sums")
	body := make([]byte, 5<<20+1000)
	rand.Read(body)
	halves := [][]byte{body[:5<<20], body[5<<20:]}
	b64crc := func(b []byte) string {
		return base64.StdEncoding.EncodeToString(binary.BigEndian.AppendUint32(nil, crc32.ChecksumIEEE(b)))
	}
	var partCRCs []byte
	for _, h := range halves {
		partCRCs = binary.BigEndian.AppendUint32(partCRCs, crc32.ChecksumIEEE(h))
	}
	composite := b64crc(partCRCs) + "-2"
	// start uploads the two parts with CRC32 checksums (or none, with
	// typ "") and returns a completion of them.
	start := func(key string, typ types.ChecksumType) func(in s3.CompleteMultipartUploadInput) (*s3.CompleteMultipartUploadOutput, error) {
		t.Helper()
		withSums := typ != ""
		cin := &s3.CreateMultipartUploadInput{Bucket: aws.String("sums"), Key: aws.String(key)}
		if withSums {
			cin.ChecksumAlgorithm, cin.ChecksumType = types.ChecksumAlgorithmCrc32, typ
		}
		u, err := c.CreateMultipartUpload(ctx, cin)
		if err != nil {
			t.Fatal(err)
		}
		var done []types.CompletedPart
		for i, h := range halves {
			in := &s3.UploadPartInput{Bucket: aws.String("sums"), Key: aws.String(key), UploadId: u.UploadId, PartNumber: aws.Int32(int32(i + 1)), Body: bytes.NewReader(h)}
			if withSums {
				in.ChecksumAlgorithm = types.ChecksumAlgorithmCrc32
			}
			p, err := c.UploadPart(ctx, in)
			if err != nil {
				t.Fatal(err)
			}
			done = append(done, types.CompletedPart{PartNumber: aws.Int32(int32(i + 1)), ETag: p.ETag, ChecksumCRC32: p.ChecksumCRC32})
		}
		return func(in s3.CompleteMultipartUploadInput) (*s3.CompleteMultipartUploadOutput, error) {
			in.Bucket, in.Key, in.UploadId = aws.String("sums"), aws.String(key), u.UploadId
			in.MultipartUpload = &types.CompletedMultipartUpload{Parts: done}
			return c.CompleteMultipartUpload(ctx, &in)
		}
	}
	stored := func(key string) bool {
		t.Helper()
		got, err := objectBody(t, c, "sums", key)
		if apiCode(err) == "NoSuchKey" {
			return false
		}
		if err != nil {
			t.Fatal(err)
		}
		if got != string(body) {
			t.Fatalf("%s holds %d bytes, not the %d uploaded", key, len(got), len(body))
		}
		return true
	}

	complete := start("full", types.ChecksumTypeFullObject)
	if _, err := complete(s3.CompleteMultipartUploadInput{ChecksumCRC32: aws.String(b64crc(halves[0])), ChecksumType: types.ChecksumTypeFullObject}); apiCode(err) != "BadDigest" || stored("full") {
		t.Fatalf("a wrong whole-object CRC: %v", err)
	}
	out, err := complete(s3.CompleteMultipartUploadInput{ChecksumCRC32: aws.String(b64crc(body)), ChecksumType: types.ChecksumTypeFullObject})
	if err != nil || aws.ToString(out.ChecksumCRC32) != b64crc(body) || out.ChecksumType != types.ChecksumTypeFullObject || !stored("full") {
		t.Fatalf("the whole-object CRC, after the refused completion: %+v, %v", out, err)
	}

	complete = start("composite", types.ChecksumTypeComposite)
	if _, err := complete(s3.CompleteMultipartUploadInput{ChecksumCRC32: aws.String(b64crc(body) + "-2"), ChecksumType: types.ChecksumTypeComposite}); apiCode(err) != "BadDigest" || stored("composite") {
		t.Fatalf("a wrong composite CRC: %v", err)
	}
	out, err = complete(s3.CompleteMultipartUploadInput{ChecksumCRC32: aws.String(composite), ChecksumType: types.ChecksumTypeComposite})
	if err != nil || aws.ToString(out.ChecksumCRC32) != composite || out.ChecksumType != types.ChecksumTypeComposite || !stored("composite") {
		t.Fatalf("the composite CRC: %+v, %v", out, err)
	}

	// The objects keep the checksums they were completed with.
	for key, want := range map[string][2]string{"full": {b64crc(body), "FULL_OBJECT"}, "composite": {composite, "COMPOSITE"}} {
		h, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("sums"), Key: aws.String(key), ChecksumMode: types.ChecksumModeEnabled})
		if err != nil || aws.ToString(h.ChecksumCRC32) != want[0] || string(h.ChecksumType) != want[1] {
			t.Fatalf("HeadObject %s with checksums: %v %v, %v; want %s %s", key, aws.ToString(h.ChecksumCRC32), h.ChecksumType, err, want[0], want[1])
		}
	}

	complete = start("sized", "")
	if _, err := complete(s3.CompleteMultipartUploadInput{MpuObjectSize: aws.Int64(int64(len(body) - 1))}); apiCode(err) != "InvalidRequest" || stored("sized") {
		t.Fatalf("a wrong object size: %v", err)
	}
	if _, err := complete(s3.CompleteMultipartUploadInput{ChecksumCRC32: aws.String(composite), ChecksumType: types.ChecksumTypeComposite}); apiCode(err) != "InvalidRequest" || stored("sized") {
		t.Fatalf("a composite CRC of parts uploaded without checksums: %v", err)
	}
	if _, err := complete(s3.CompleteMultipartUploadInput{MpuObjectSize: aws.Int64(int64(len(body)))}); err != nil || !stored("sized") {
		t.Fatalf("the object's size: %v", err)
	}
}

// TestS3DottedBucketNames: bucket names with dots, which S3 allows and
// sites use ("assets.example.com"), hold objects like any other; names S3
// refuses are InvalidBucketName.
func TestS3DottedBucketNames(t *testing.T) {
	_, c, _ := startS3(t)
	ctx := context.Background()
	for _, b := range []string{"assets.example.com", "assets-example-com"} {
		if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(b)}); err != nil {
			t.Fatalf("create %s: %v", b, err)
		}
		if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(b), Key: aws.String("css/site.css"), Body: strings.NewReader("in " + b)}); err != nil {
			t.Fatal(err)
		}
	}
	for _, b := range []string{"assets.example.com", "assets-example-com"} {
		if got, err := objectBody(t, c, b, "css/site.css"); err != nil || got != "in "+b {
			t.Fatalf("%s holds %q, %v", b, got, err)
		}
		l, err := c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(b)})
		if err != nil || len(l.Contents) != 1 {
			t.Fatalf("list %s: %+v %v", b, l, err)
		}
	}
	// HeadBucket names the region the request was signed for (the SDKs'
	// region lookups read it).
	if h, err := c.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String("assets.example.com")}); err != nil || aws.ToString(h.BucketRegion) != "us-east-1" {
		t.Fatalf("HeadBucket: region %v, %v", aws.ToString(h.BucketRegion), err)
	}
	if h, err := c.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String("assets.example.com")}, func(o *s3.Options) { o.Region = "eu-north-1" }); err != nil || aws.ToString(h.BucketRegion) != "eu-north-1" {
		t.Fatalf("HeadBucket signed for eu-north-1: region %v, %v", aws.ToString(h.BucketRegion), err)
	}
	lb, err := c.ListBuckets(ctx, &s3.ListBucketsInput{})
	if err != nil || len(lb.Buckets) != 2 || *lb.Buckets[0].Name != "assets-example-com" || *lb.Buckets[1].Name != "assets.example.com" {
		t.Fatalf("ListBuckets: %+v %v", lb, err)
	}
	for _, b := range []string{"a..b", "192.168.1.1", "xn--bucket", "bucket.mrap"} {
		if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(b)}); apiCode(err) != "InvalidBucketName" {
			t.Errorf("create %s: %v, want InvalidBucketName", b, err)
		}
	}
	if _, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String("assets.example.com"), Key: aws.String("css/site.css")}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: aws.String("assets.example.com")}); err != nil {
		t.Fatalf("delete the dotted bucket: %v", err)
	}
	if _, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("assets-example-com"), Key: aws.String("css/site.css")}); err != nil {
		t.Fatalf("the other bucket after the dotted one was deleted: %v", err)
	}
}

// startVirtualHosted starts a node serving S3 under the domain
// s3.nimbus.test, and returns an HTTP client that takes every host of it
// to the node (and follows no redirect), and S3 clients of a real key
// through it, in the virtual-hosted or the path style.
func startVirtualHosted(t *testing.T) (*http.Client, func(pathStyle bool) *s3.Client) {
	t.Helper()
	n := nodetest.Start(t, node.Config{Dev: false, S3Domains: []string{"s3.nimbus.test"}})
	k, err := n.Keys.Create(context.Background(), "vhost", keys.KindAWS)
	if err != nil {
		t.Fatal(err)
	}
	addr := strings.TrimPrefix(n.URL(), "http://")
	_, port, _ := net.SplitHostPort(addr)
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}}, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return hc, func(pathStyle bool) *s3.Client {
		return s3.New(s3.Options{Region: "us-east-1", BaseEndpoint: aws.String("http://s3.nimbus.test:" + port), UsePathStyle: pathStyle,
			HTTPClient: hc, Credentials: credentials.NewStaticCredentialsProvider(k.ID, k.Secret, "")})
	}
}

// TestS3VirtualHostedStyle: with --s3-domain, a request may name its
// bucket in its host (BUCKET.DOMAIN/KEY), as the AWS SDKs do by default;
// path-style requests keep working beside them.
func TestS3VirtualHostedStyle(t *testing.T) {
	ctx := context.Background()
	hc, client := startVirtualHosted(t)
	vh, ps := client(false), client(true)
	createBuckets(t, vh, "photos")
	if _, err := vh.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("photos"), Key: aws.String("2026/a b.jpg"), Body: strings.NewReader("jpeg")}); err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]*s3.Client{"virtual-hosted": vh, "path": ps} {
		if b, err := objectBody(t, c, "photos", "2026/a b.jpg"); err != nil || b != "jpeg" {
			t.Fatalf("%s GET: %q, %v", name, b, err)
		}
		l, err := c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("photos"), Prefix: aws.String("2026/")})
		if err != nil || len(l.Contents) != 1 || *l.Contents[0].Key != "2026/a b.jpg" {
			t.Fatalf("%s list: %+v %v", name, l, err)
		}
	}
	// A presigned URL in the virtual-hosted style.
	ps2, err := s3.NewPresignClient(vh).PresignGetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("photos"), Key: aws.String("2026/a b.jpg")})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(ps2.URL, "http://photos.s3.nimbus.test:") {
		t.Fatalf("presigned URL %s is not virtual-hosted", ps2.URL)
	}
	resp, err := hc.Get(ps2.URL)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(b) != "jpeg" {
		t.Fatalf("presigned GET: %d %q", resp.StatusCode, b)
	}
	lb, err := vh.ListBuckets(ctx, &s3.ListBucketsInput{})
	if err != nil || len(lb.Buckets) != 1 {
		t.Fatalf("ListBuckets on the domain itself: %+v %v", lb, err)
	}
	if _, err := vh.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String("photos"), Key: aws.String("2026/a b.jpg")}); err != nil {
		t.Fatal(err)
	}
}

// TestS3KeptChecksums: an object keeps the checksum it was uploaded with,
// and a GET or HEAD with checksum mode answers it (the SDK checks a
// download against it), as S3 does; a copy keeps it too; an object
// uploaded without one answers its SHA-256.
func TestS3KeptChecksums(t *testing.T) {
	_, c, _ := startS3(t)
	ctx := context.Background()
	createBuckets(t, c, "kept")
	body := []byte("checked on the way in and on the way out")
	crc := base64.StdEncoding.EncodeToString(binary.BigEndian.AppendUint32(nil, crc32.ChecksumIEEE(body)))
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("kept"), Key: aws.String("crc"), Body: bytes.NewReader(body),
		ChecksumAlgorithm: types.ChecksumAlgorithmCrc32}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("kept"), Key: aws.String("plain"), Body: bytes.NewReader(body)}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CopyObject(ctx, &s3.CopyObjectInput{Bucket: aws.String("kept"), Key: aws.String("copy"), CopySource: aws.String("kept/crc")}); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"crc", "copy"} {
		out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("kept"), Key: aws.String(key), ChecksumMode: types.ChecksumModeEnabled})
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(out.Body) // the SDK checks the CRC32 at the end
		out.Body.Close()
		if err != nil || !bytes.Equal(got, body) || aws.ToString(out.ChecksumCRC32) != crc || out.ChecksumType != types.ChecksumTypeFullObject {
			t.Fatalf("GetObject %s with checksums: %q, %v, CRC32 %v %v", key, got, err, aws.ToString(out.ChecksumCRC32), out.ChecksumType)
		}
	}
	h, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("kept"), Key: aws.String("plain"), ChecksumMode: types.ChecksumModeEnabled})
	if sha := sha256.Sum256(body); err != nil || aws.ToString(h.ChecksumSHA256) != base64.StdEncoding.EncodeToString(sha[:]) || h.ChecksumCRC32 != nil {
		t.Fatalf("HeadObject of an object put without a checksum: SHA-256 %v, CRC32 %v, %v", aws.ToString(h.ChecksumSHA256), h.ChecksumCRC32, err)
	}
}

// s3ErrorOf sends req and returns its status and S3 error code ("" when
// the answer is not S3's XML).
func s3ErrorOf(t *testing.T, req *http.Request) (int, string, string) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var e struct{ Code, Message string }
	b, _ := io.ReadAll(resp.Body)
	if xml.Unmarshal(b, &e) != nil {
		return resp.StatusCode, "", string(b)
	}
	return resp.StatusCode, e.Code, e.Message
}

// TestS3ClientsSigningAsTheyDo: clients sign as their defaults have them.
// s3cmd signs bucket creations for the region "US", which Nimbus took for
// a malformed scope and handed to the user routes (404 in JSON: s3cmd
// could not create a bucket). The AWS CLI v1 presigns with Signature
// Version 2, which got the same 404; it is refused as S3 refuses it, with
// what to do about it, and, as any credentials are, accepted in dev mode.
func TestS3ClientsSigningAsTheyDo(t *testing.T) {
	n, c, _ := startS3(t)
	ctx := context.Background()
	us := func(o *s3.Options) { o.Region = "US" }
	if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("signed-for-us")}, us); err != nil {
		t.Fatalf("CreateBucket signed for US: %v", err)
	}
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("signed-for-us"), Key: aws.String("a.txt"), Body: strings.NewReader("in US")}, us); err != nil {
		t.Fatalf("PutObject signed for US: %v", err)
	}
	if h, err := c.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String("signed-for-us")}, us); err != nil || aws.ToString(h.BucketRegion) != "US" {
		t.Fatalf("HeadBucket signed for US: region %v, %v", aws.ToString(h.BucketRegion), err)
	}
	if got, err := objectBody(t, c, "signed-for-us", "a.txt"); err != nil || got != "in US" {
		t.Fatalf("object: %q, %v", got, err)
	}

	// Signature Version 2, in a header and presigned: refused, nothing stored.
	put, _ := http.NewRequest(http.MethodPut, n.URL()+"/signed-for-us/v2.txt", strings.NewReader("v2"))
	put.Header.Set("Date", time.Now().UTC().Format(http.TimeFormat))
	put.Header.Set("Authorization", "AWS NMBKEXAMPLE:"+base64.StdEncoding.EncodeToString(make([]byte, 20)))
	get, _ := http.NewRequest(http.MethodGet, n.URL()+"/signed-for-us/a.txt?AWSAccessKeyId=NMBKEXAMPLE&Signature=abc%3D&Expires="+
		fmt.Sprint(time.Now().Add(time.Hour).Unix()), nil)
	for _, req := range []*http.Request{put, get} {
		status, code, msg := s3ErrorOf(t, req)
		if status != http.StatusBadRequest || code != "InvalidRequest" || !strings.Contains(msg, "AWS4-HMAC-SHA256") || !strings.Contains(msg, "signature_version s3v4") {
			t.Errorf("%s signed with SigV2: %d %s %q, want 400 InvalidRequest asking for SigV4", req.Method, status, code, msg)
		}
	}
	if _, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("signed-for-us"), Key: aws.String("v2.txt")}); apiCode(err) != "NotFound" {
		t.Errorf("the SigV2 put stored something: %v", err)
	}

	dev := nodetest.Start(t, node.Config{Dev: true})
	if _, _, err := dev.Data.PutBucket(ctx, "presigned"); err != nil {
		t.Fatal(err)
	}
	if _, err := dev.Data.PutObject(ctx, "presigned", "a.txt", strings.NewReader("shared"), 6, data.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(dev.URL() + "/presigned/a.txt?AWSAccessKeyId=anyone&Signature=abc%3D&Expires=" + fmt.Sprint(time.Now().Add(time.Hour).Unix()))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(b) != "shared" {
		t.Fatalf("a SigV2-presigned GET in dev mode: %d %q", resp.StatusCode, b)
	}
}

// TestS3ACLs: every bucket and object is private to the node's keys, and
// reading an ACL says so (s3cmd, Cyberduck and Terraform read them, and
// failed on the 501 they got); setting "private" is accepted, as it is
// what holds, and any other grant refused, changing nothing.
func TestS3ACLs(t *testing.T) {
	_, c, _ := startS3(t)
	ctx := context.Background()
	createBuckets(t, c, "acls")
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("acls"), Key: aws.String("k"), Body: strings.NewReader("private")}); err != nil {
		t.Fatal(err)
	}
	private := func(what string, owner *types.Owner, grants []types.Grant) {
		t.Helper()
		if owner == nil || aws.ToString(owner.ID) != "nimbus" || len(grants) != 1 || grants[0].Permission != types.PermissionFullControl ||
			grants[0].Grantee == nil || grants[0].Grantee.Type != types.TypeCanonicalUser || aws.ToString(grants[0].Grantee.ID) != "nimbus" {
			t.Errorf("%s: owner %+v, grants %+v; want the owner's FULL_CONTROL alone", what, owner, grants)
		}
	}
	b, err := c.GetBucketAcl(ctx, &s3.GetBucketAclInput{Bucket: aws.String("acls")})
	if err != nil {
		t.Fatal(err)
	}
	private("GetBucketAcl", b.Owner, b.Grants)
	o, err := c.GetObjectAcl(ctx, &s3.GetObjectAclInput{Bucket: aws.String("acls"), Key: aws.String("k")})
	if err != nil {
		t.Fatal(err)
	}
	private("GetObjectAcl", o.Owner, o.Grants)
	if _, err := c.GetObjectAcl(ctx, &s3.GetObjectAclInput{Bucket: aws.String("acls"), Key: aws.String("nope")}); apiCode(err) != "NoSuchKey" {
		t.Errorf("GetObjectAcl of no object: %v, want NoSuchKey", err)
	}
	if _, err := c.GetBucketAcl(ctx, &s3.GetBucketAclInput{Bucket: aws.String("nope")}); apiCode(err) != "NoSuchBucket" {
		t.Errorf("GetBucketAcl of no bucket: %v, want NoSuchBucket", err)
	}

	ownerOnly := &types.AccessControlPolicy{Owner: &types.Owner{ID: aws.String("nimbus")}, Grants: []types.Grant{{
		Grantee: &types.Grantee{Type: types.TypeCanonicalUser, ID: aws.String("nimbus")}, Permission: types.PermissionFullControl}}}
	public := &types.AccessControlPolicy{Owner: &types.Owner{ID: aws.String("nimbus")}, Grants: []types.Grant{{
		Grantee: &types.Grantee{Type: types.TypeGroup, URI: aws.String("http://acs.amazonaws.com/groups/global/AllUsers")}, Permission: types.PermissionRead}}}
	for _, tc := range []struct {
		name string
		call func() error
		want string
	}{
		{"PutObjectAcl private", func() error {
			_, err := c.PutObjectAcl(ctx, &s3.PutObjectAclInput{Bucket: aws.String("acls"), Key: aws.String("k"), ACL: types.ObjectCannedACLPrivate})
			return err
		}, ""},
		{"PutBucketAcl of the owner's FULL_CONTROL", func() error {
			_, err := c.PutBucketAcl(ctx, &s3.PutBucketAclInput{Bucket: aws.String("acls"), AccessControlPolicy: ownerOnly})
			return err
		}, ""},
		{"PutObjectAcl public-read", func() error {
			_, err := c.PutObjectAcl(ctx, &s3.PutObjectAclInput{Bucket: aws.String("acls"), Key: aws.String("k"), ACL: types.ObjectCannedACLPublicRead})
			return err
		}, "NotImplemented"},
		{"PutBucketAcl granting AllUsers READ", func() error {
			_, err := c.PutBucketAcl(ctx, &s3.PutBucketAclInput{Bucket: aws.String("acls"), AccessControlPolicy: public})
			return err
		}, "NotImplemented"},
		{"PutObjectAcl with a grant header", func() error {
			_, err := c.PutObjectAcl(ctx, &s3.PutObjectAclInput{Bucket: aws.String("acls"), Key: aws.String("k"), GrantRead: aws.String(`uri="http://acs.amazonaws.com/groups/global/AllUsers"`)})
			return err
		}, "NotImplemented"},
		{"PutObjectAcl of no object", func() error {
			_, err := c.PutObjectAcl(ctx, &s3.PutObjectAclInput{Bucket: aws.String("acls"), Key: aws.String("nope"), ACL: types.ObjectCannedACLPrivate})
			return err
		}, "NoSuchKey"},
	} {
		if err := tc.call(); apiCode(err) != tc.want {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
	if got, err := objectBody(t, c, "acls", "k"); err != nil || got != "private" {
		t.Fatalf("the object after the ACL requests: %q, %v", got, err)
	}
	if _, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("acls"), Key: aws.String("nope")}); apiCode(err) != "NotFound" {
		t.Errorf("an ACL request made an object: %v", err)
	}
}

// TestS3ObjectAttributes: GetObjectAttributes tells an object's ETag,
// checksum, parts, storage class and size without its bytes; it was 501.
// Listings name objects' owner: V1 always, V2 with fetch-owner.
func TestS3ObjectAttributes(t *testing.T) {
	_, c, _ := startS3(t)
	ctx := context.Background()
	createBuckets(t, c, "attrs")
	small := []byte("small object")
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("attrs"), Key: aws.String("small"), Body: bytes.NewReader(small),
		ChecksumAlgorithm: types.ChecksumAlgorithmCrc32}); err != nil {
		t.Fatal(err)
	}
	crc := make([]byte, 4)
	binary.BigEndian.PutUint32(crc, crc32.ChecksumIEEE(small))
	all := []types.ObjectAttributes{types.ObjectAttributesEtag, types.ObjectAttributesChecksum, types.ObjectAttributesObjectParts,
		types.ObjectAttributesStorageClass, types.ObjectAttributesObjectSize}
	a, err := c.GetObjectAttributes(ctx, &s3.GetObjectAttributesInput{Bucket: aws.String("attrs"), Key: aws.String("small"), ObjectAttributes: all})
	if err != nil {
		t.Fatal(err)
	}
	sum := md5.Sum(small)
	if aws.ToString(a.ETag) != hex.EncodeToString(sum[:]) || aws.ToInt64(a.ObjectSize) != int64(len(small)) || a.StorageClass != types.StorageClassStandard ||
		a.Checksum == nil || aws.ToString(a.Checksum.ChecksumCRC32) != base64.StdEncoding.EncodeToString(crc) || a.Checksum.ChecksumType != types.ChecksumTypeFullObject ||
		a.ObjectParts != nil || a.LastModified == nil {
		t.Fatalf("attributes of a put object: %+v (checksum %+v)", a, a.Checksum)
	}

	// A multipart object: its parts, a page at a time.
	u, err := c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String("attrs"), Key: aws.String("multi")})
	if err != nil {
		t.Fatal(err)
	}
	sizes := []int{5 << 20, 5 << 20, 1000}
	var done []types.CompletedPart
	for i, n := range sizes {
		p, err := c.UploadPart(ctx, &s3.UploadPartInput{Bucket: aws.String("attrs"), Key: aws.String("multi"), UploadId: u.UploadId,
			PartNumber: aws.Int32(int32(i + 1)), Body: bytes.NewReader(make([]byte, n))})
		if err != nil {
			t.Fatal(err)
		}
		done = append(done, types.CompletedPart{PartNumber: aws.Int32(int32(i + 1)), ETag: p.ETag})
	}
	if _, err := c.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: aws.String("attrs"), Key: aws.String("multi"), UploadId: u.UploadId,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: done}}); err != nil {
		t.Fatal(err)
	}
	var got []int
	marker := ""
	for page := 0; ; page++ {
		a, err := c.GetObjectAttributes(ctx, &s3.GetObjectAttributesInput{Bucket: aws.String("attrs"), Key: aws.String("multi"),
			ObjectAttributes: []types.ObjectAttributes{types.ObjectAttributesObjectParts}, MaxParts: aws.Int32(2), PartNumberMarker: aws.String(marker)})
		if err != nil {
			t.Fatal(err)
		}
		p := a.ObjectParts
		if p == nil || aws.ToInt32(p.TotalPartsCount) != 3 || a.ETag != nil || a.ObjectSize != nil {
			t.Fatalf("page %d: %+v (parts %+v)", page, a, p)
		}
		for _, part := range p.Parts {
			got = append(got, int(aws.ToInt64(part.Size)))
		}
		if !aws.ToBool(p.IsTruncated) {
			break
		}
		marker = aws.ToString(p.NextPartNumberMarker)
	}
	if fmt.Sprint(got) != fmt.Sprint(sizes) {
		t.Fatalf("part sizes %v, want %v", got, sizes)
	}
	if _, err := c.GetObjectAttributes(ctx, &s3.GetObjectAttributesInput{Bucket: aws.String("attrs"), Key: aws.String("nope"), ObjectAttributes: all}); apiCode(err) != "NoSuchKey" {
		t.Errorf("attributes of no object: %v, want NoSuchKey", err)
	}
	if _, err := c.GetObjectAttributes(ctx, &s3.GetObjectAttributesInput{Bucket: aws.String("attrs"), Key: aws.String("small"),
		ObjectAttributes: []types.ObjectAttributes{"Colour"}}); apiCode(err) != "InvalidArgument" {
		t.Errorf("an unknown attribute: %v, want InvalidArgument", err)
	}

	v1, err := c.ListObjects(ctx, &s3.ListObjectsInput{Bucket: aws.String("attrs")})
	if err != nil || len(v1.Contents) != 2 || v1.Contents[0].Owner == nil || aws.ToString(v1.Contents[0].Owner.ID) != "nimbus" {
		t.Fatalf("ListObjects (V1) names no owner: %+v, %v", v1, err)
	}
	for _, fetch := range []bool{false, true} {
		v2, err := c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("attrs"), FetchOwner: aws.Bool(fetch)})
		if err != nil || len(v2.Contents) != 2 || (v2.Contents[0].Owner != nil) != fetch {
			t.Fatalf("ListObjectsV2 with fetch-owner %v: %+v, %v", fetch, v2, err)
		}
	}
}

// TestS3UploadChecksumAlgorithm: an upload created with a checksum
// algorithm gives every part a checksum of it, computed when the part
// carries none, refuses a part that carries another, and gives the object
// its checksum at completion, computed when the completion declares none,
// as S3 does. Before, the declaration was ignored: parts uploaded without
// checksums could not make a composite checksum, and the object kept none.
func TestS3UploadChecksumAlgorithm(t *testing.T) {
	_, c, _ := startS3(t)
	ctx := context.Background()
	createBuckets(t, c, "declared", "source")
	// A client that sends checksums only where S3 requires them, as the
	// SDKs do when configured "when_required": the parts carry none.
	bare := func(o *s3.Options) { o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired }
	parts := [][]byte{make([]byte, 5<<20), []byte("the last part")}
	rand.Read(parts[0])
	whole := append(append([]byte(nil), parts[0]...), parts[1]...)
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("source"), Key: aws.String("tail"), Body: bytes.NewReader(parts[1])}); err != nil {
		t.Fatal(err)
	}
	crc := func(h hash.Hash, b []byte) string { h.Write(b); return base64.StdEncoding.EncodeToString(h.Sum(nil)) }
	crc32c := func() hash.Hash { return crc32.New(crc32.MakeTable(crc32.Castagnoli)) }

	for _, tc := range []struct {
		alg       types.ChecksumAlgorithm
		typ       types.ChecksumType // as declared
		wantType  types.ChecksumType
		partSum   func(b []byte) string
		objectSum string
		sumOf     func(*s3.UploadPartOutput) *string
		listed    func(types.Part) *string
		completed func(types.CompletedPart, *string) types.CompletedPart
		result    func(*s3.CompleteMultipartUploadOutput) *string
		head      func(*s3.HeadObjectOutput) *string
	}{
		{alg: types.ChecksumAlgorithmCrc32, wantType: types.ChecksumTypeComposite,
			partSum:   func(b []byte) string { return crc(crc32.NewIEEE(), b) },
			objectSum: crc(crc32.NewIEEE(), binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, crc32.ChecksumIEEE(parts[0])), crc32.ChecksumIEEE(parts[1]))) + "-2",
			sumOf:     func(o *s3.UploadPartOutput) *string { return o.ChecksumCRC32 },
			listed:    func(p types.Part) *string { return p.ChecksumCRC32 },
			completed: func(p types.CompletedPart, v *string) types.CompletedPart { p.ChecksumCRC32 = v; return p },
			result:    func(o *s3.CompleteMultipartUploadOutput) *string { return o.ChecksumCRC32 },
			head:      func(o *s3.HeadObjectOutput) *string { return o.ChecksumCRC32 }},
		{alg: types.ChecksumAlgorithmCrc32c, typ: types.ChecksumTypeFullObject, wantType: types.ChecksumTypeFullObject,
			partSum:   func(b []byte) string { return crc(crc32c(), b) },
			objectSum: crc(crc32c(), whole),
			sumOf:     func(o *s3.UploadPartOutput) *string { return o.ChecksumCRC32C },
			listed:    func(p types.Part) *string { return p.ChecksumCRC32C },
			completed: func(p types.CompletedPart, v *string) types.CompletedPart { p.ChecksumCRC32C = v; return p },
			result:    func(o *s3.CompleteMultipartUploadOutput) *string { return o.ChecksumCRC32C },
			head:      func(o *s3.HeadObjectOutput) *string { return o.ChecksumCRC32C }},
	} {
		key := string(tc.alg)
		u, err := c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String("declared"), Key: aws.String(key), ChecksumAlgorithm: tc.alg, ChecksumType: tc.typ})
		if err != nil || u.ChecksumAlgorithm != tc.alg || u.ChecksumType != tc.wantType {
			t.Fatalf("%s: CreateMultipartUpload: %+v, %v", key, u, err)
		}
		// A part carrying another algorithm's checksum is refused (a
		// short one: the refusal comes before the body is read, and a
		// client still sending a long one may see the connection close
		// before it reads the answer).
		if _, err := c.UploadPart(ctx, &s3.UploadPartInput{Bucket: aws.String("declared"), Key: aws.String(key), UploadId: u.UploadId, PartNumber: aws.Int32(1),
			Body: bytes.NewReader(parts[1]), ChecksumAlgorithm: types.ChecksumAlgorithmSha256}); apiCode(err) != "InvalidRequest" {
			t.Fatalf("%s: a part with a SHA256 checksum: %v, want InvalidRequest", key, err)
		}
		// Part 1 carries none, part 2 is copied: both get one, computed.
		p1, err := c.UploadPart(ctx, &s3.UploadPartInput{Bucket: aws.String("declared"), Key: aws.String(key), UploadId: u.UploadId, PartNumber: aws.Int32(1),
			Body: bytes.NewReader(parts[0])}, bare)
		if err != nil || aws.ToString(tc.sumOf(p1)) != tc.partSum(parts[0]) {
			t.Fatalf("%s: part 1 without a checksum: %v, %v; want %s computed", key, aws.ToString(tc.sumOf(p1)), err, tc.partSum(parts[0]))
		}
		p2, err := c.UploadPartCopy(ctx, &s3.UploadPartCopyInput{Bucket: aws.String("declared"), Key: aws.String(key), UploadId: u.UploadId, PartNumber: aws.Int32(2),
			CopySource: aws.String("source/tail")})
		if err != nil {
			t.Fatal(err)
		}
		lp, err := c.ListParts(ctx, &s3.ListPartsInput{Bucket: aws.String("declared"), Key: aws.String(key), UploadId: u.UploadId})
		if err != nil || lp.ChecksumAlgorithm != tc.alg || lp.ChecksumType != tc.wantType || len(lp.Parts) != 2 ||
			aws.ToString(tc.listed(lp.Parts[0])) != tc.partSum(parts[0]) || aws.ToString(tc.listed(lp.Parts[1])) != tc.partSum(parts[1]) {
			t.Fatalf("%s: ListParts: %+v, %v", key, lp, err)
		}
		lu, err := c.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: aws.String("declared"), Prefix: aws.String(key)})
		if err != nil || len(lu.Uploads) != 1 || lu.Uploads[0].ChecksumAlgorithm != tc.alg || lu.Uploads[0].ChecksumType != tc.wantType {
			t.Fatalf("%s: ListMultipartUploads: %+v, %v", key, lu, err)
		}
		named := []types.CompletedPart{{PartNumber: aws.Int32(1), ETag: p1.ETag}, {PartNumber: aws.Int32(2), ETag: p2.CopyPartResult.ETag}}
		complete := func(parts []types.CompletedPart) (*s3.CompleteMultipartUploadOutput, error) {
			return c.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: aws.String("declared"), Key: aws.String(key), UploadId: u.UploadId,
				MultipartUpload: &types.CompletedMultipartUpload{Parts: parts}})
		}
		if tc.wantType == types.ChecksumTypeComposite {
			// A composite is made of the parts' checksums: the
			// completion must name them.
			if _, err := complete(named); apiCode(err) != "InvalidRequest" {
				t.Fatalf("%s: a completion naming no part checksums: %v, want InvalidRequest", key, err)
			}
		}
		named[0] = tc.completed(named[0], tc.sumOf(p1))
		named[1] = tc.completed(named[1], lp.Parts[1].ChecksumCRC32)
		if tc.alg == types.ChecksumAlgorithmCrc32c {
			named[1] = tc.completed(named[1], lp.Parts[1].ChecksumCRC32C)
		}
		out, err := complete(named)
		if err != nil || aws.ToString(tc.result(out)) != tc.objectSum || out.ChecksumType != tc.wantType {
			t.Fatalf("%s: completion: %v %v, %v; want %s %s", key, aws.ToString(tc.result(out)), out.ChecksumType, err, tc.objectSum, tc.wantType)
		}
		h, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("declared"), Key: aws.String(key), ChecksumMode: types.ChecksumModeEnabled})
		if err != nil || aws.ToString(tc.head(h)) != tc.objectSum || h.ChecksumType != tc.wantType || aws.ToInt64(h.ContentLength) != int64(len(whole)) {
			t.Fatalf("%s: the object keeps %v %v (%v); want %s", key, aws.ToString(tc.head(h)), h.ChecksumType, err, tc.objectSum)
		}
	}

	for _, in := range []*s3.CreateMultipartUploadInput{
		{ChecksumType: types.ChecksumTypeComposite},
		{ChecksumAlgorithm: types.ChecksumAlgorithmSha1, ChecksumType: types.ChecksumTypeFullObject},
		{ChecksumAlgorithm: types.ChecksumAlgorithmCrc64nvme, ChecksumType: types.ChecksumTypeComposite},
		{ChecksumAlgorithm: "MD4"},
	} {
		in.Bucket, in.Key = aws.String("declared"), aws.String("refused")
		if _, err := c.CreateMultipartUpload(ctx, in); apiCode(err) != "InvalidRequest" {
			t.Errorf("CreateMultipartUpload %s %s: %v, want InvalidRequest", in.ChecksumAlgorithm, in.ChecksumType, err)
		}
	}
}

// TestS3RefusalsReachTheClient: a put refused before its body is read
// (a conditional put that fails, a bucket that does not exist) reaches
// the AWS SDK as the refusal. The SDK sends the body at once; the node
// answered and closed the connection on it, and the SDK, meeting a reset
// as it wrote, reported "connection reset by peer" after three attempts
// instead of 412 or 404 (2 to 4 of these 10 puts each run).
func TestS3RefusalsReachTheClient(t *testing.T) {
	_, c, _ := startS3(t)
	ctx := context.Background()
	createBuckets(t, c, "refusals")
	big := make([]byte, 20<<20)
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("refusals"), Key: aws.String("k"), Body: bytes.NewReader(big)}); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		_, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("refusals"), Key: aws.String("k"), Body: bytes.NewReader(big), IfNoneMatch: aws.String("*")})
		if apiCode(err) != "PreconditionFailed" {
			t.Errorf("conditional put %d over an object: %v, want PreconditionFailed", i, err)
		}
		_, err = c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("no-such-bucket"), Key: aws.String("k"), Body: bytes.NewReader(big)})
		if apiCode(err) != "NoSuchBucket" {
			t.Errorf("put %d into no bucket: %v, want NoSuchBucket", i, err)
		}
	}
}

// TestS3PostObject: a browser uploads straight to a bucket with an HTML
// form the server signed beforehand as a policy (the SDK's
// PresignPostObject), which bounds the key and the file's size. Under
// --s3-domain, where the host names the bucket; before, such a POST went
// to the user routes (404).
func TestS3PostObject(t *testing.T) {
	ctx := context.Background()
	hc, client := startVirtualHosted(t)
	c := client(false)
	createBuckets(t, c, "uploads")
	presign := func(key string, expires time.Duration, conditions ...any) *s3.PresignedPostRequest {
		t.Helper()
		p, err := s3.NewPresignClient(c).PresignPostObject(ctx, &s3.PutObjectInput{Bucket: aws.String("uploads"), Key: aws.String(key)},
			func(o *s3.PresignPostOptions) { o.Expires, o.Conditions = expires, conditions })
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	// post sends the form as a browser does: the policy's fields, extra
	// ones, then the file.
	post := func(p *s3.PresignedPostRequest, extra map[string]string, body []byte) (*http.Response, string) {
		t.Helper()
		var form bytes.Buffer
		mw := multipart.NewWriter(&form)
		for name, v := range p.Values {
			mw.WriteField(name, v)
		}
		for name, v := range extra {
			mw.WriteField(name, v)
		}
		fw, _ := mw.CreateFormFile("file", "photo.png")
		fw.Write(body)
		mw.Close()
		req, _ := http.NewRequest(http.MethodPost, p.URL, &form)
		req.Header.Set("Content-Type", mw.FormDataContentType())
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	photo := bytes.Repeat([]byte("png"), 300)
	sized := []any{[]any{"content-length-range", 1, 1024}, []any{"starts-with", "$Content-Type", "image/"}}

	p := presign("avatars/ada.png", time.Hour, sized...)
	if !strings.HasPrefix(p.URL, "http://uploads.s3.nimbus.test:") {
		t.Fatalf("the form posts to %s, not the bucket's host", p.URL)
	}
	if resp, body := post(p, map[string]string{"Content-Type": "image/png"}, photo); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("the form: %d %s", resp.StatusCode, body)
	}
	h, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("uploads"), Key: aws.String("avatars/ada.png")})
	if err != nil || aws.ToInt64(h.ContentLength) != int64(len(photo)) || aws.ToString(h.ContentType) != "image/png" {
		t.Fatalf("the posted object: %+v, %v", h, err)
	}

	for _, tc := range []struct {
		name   string
		p      *s3.PresignedPostRequest
		extra  map[string]string
		body   []byte
		status int
		code   string
	}{
		{"over the policy's size", p, map[string]string{"Content-Type": "image/png"}, make([]byte, 2000), http.StatusBadRequest, "EntityTooLarge"},
		{"under it", presign("avatars/empty.png", time.Hour, []any{"content-length-range", 10, 1024}), nil, []byte("tiny"), http.StatusBadRequest, "EntityTooSmall"},
		{"a type the policy refuses", p, map[string]string{"Content-Type": "text/html"}, photo, http.StatusForbidden, "AccessDenied"},
		{"a field the policy does not name", p, map[string]string{"Content-Type": "image/png", "x-amz-meta-owner": "mallory"}, photo, http.StatusForbidden, "AccessDenied"},
		{"another key", p, map[string]string{"Content-Type": "image/png", "key": "avatars/other.png"}, photo, http.StatusForbidden, "AccessDenied"},
		{"a tampered policy", &s3.PresignedPostRequest{URL: p.URL, Values: tamper(p.Values)}, map[string]string{"Content-Type": "image/png"}, photo, http.StatusForbidden, "SignatureDoesNotMatch"},
		{"encryption asked for, which Nimbus would not keep", presign("avatars/sse.png", time.Hour, map[string]string{"x-amz-server-side-encryption": "AES256"}),
			map[string]string{"x-amz-server-side-encryption": "AES256"}, photo, http.StatusNotImplemented, "NotImplemented"},
	} {
		values := maps.Clone(tc.p.Values)
		for k, v := range tc.extra {
			if _, ok := values[k]; ok {
				values[k] = v
				delete(tc.extra, k)
			}
		}
		resp, body := post(&s3.PresignedPostRequest{URL: tc.p.URL, Values: values}, tc.extra, tc.body)
		if resp.StatusCode != tc.status || !strings.Contains(body, "<Code>"+tc.code+"</Code>") {
			t.Errorf("%s: %d %s, want %d %s", tc.name, resp.StatusCode, body, tc.status, tc.code)
		}
	}
	l, err := c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("uploads")})
	if err != nil || len(l.Contents) != 1 {
		t.Fatalf("objects after the refused forms: %+v, %v", l, err)
	}

	// An expired form is refused; a form may ask for a 201 and an XML answer.
	expired := presign("late.png", time.Second)
	time.Sleep(1100 * time.Millisecond)
	if resp, body := post(expired, nil, photo); resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "Policy expired") {
		t.Errorf("an expired form: %d %s", resp.StatusCode, body)
	}
	p201 := presign("created.png", time.Hour, map[string]string{"success_action_status": "201"})
	if resp, body := post(p201, map[string]string{"success_action_status": "201"}, photo); resp.StatusCode != http.StatusCreated || !strings.Contains(body, "<Key>created.png</Key>") {
		t.Errorf("a 201 form: %d %s", resp.StatusCode, body)
	}
	// Browsers ask first.
	req, _ := http.NewRequest(http.MethodOptions, p.URL, nil)
	req.Header.Set("Origin", "https://app.example.com")
	req.Header.Set("Access-Control-Request-Method", "POST")
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent || resp.Header.Get("Access-Control-Allow-Origin") == "" {
		t.Errorf("the form's preflight: %d %v", resp.StatusCode, resp.Header)
	}
}

// tamper returns values with the policy's expiration pushed out, which
// its signature no longer matches.
func tamper(values map[string]string) map[string]string {
	out := maps.Clone(values)
	raw, _ := base64.StdEncoding.DecodeString(out["policy"])
	raw = bytes.Replace(raw, []byte(`"expiration":"20`), []byte(`"expiration":"29`), 1)
	out["policy"] = base64.StdEncoding.EncodeToString(raw)
	return out
}

// TestS3UnconfiguredReads: reading a configuration a bucket never has in
// Nimbus (CORS rules, a policy, tags, encryption, ...) answers what S3
// answers for a bucket without it, which is the truth; an object's tags
// are an empty set. Terraform reads them all on every refresh, and the
// 501 they were made it fail. Writing them stays 501
// (TestS3UnsupportedSubresources).
func TestS3UnconfiguredReads(t *testing.T) {
	_, c, _ := startS3(t)
	ctx := context.Background()
	createBuckets(t, c, "plain")
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("plain"), Key: aws.String("k"), Body: strings.NewReader("x")}); err != nil {
		t.Fatal(err)
	}
	b := aws.String("plain")
	for _, tc := range []struct {
		name string
		call func() error
		want string // "" for a 200
	}{
		{"GetBucketCors", func() error { _, err := c.GetBucketCors(ctx, &s3.GetBucketCorsInput{Bucket: b}); return err }, "NoSuchCORSConfiguration"},
		{"GetBucketPolicy", func() error { _, err := c.GetBucketPolicy(ctx, &s3.GetBucketPolicyInput{Bucket: b}); return err }, "NoSuchBucketPolicy"},
		{"GetBucketLifecycleConfiguration", func() error {
			_, err := c.GetBucketLifecycleConfiguration(ctx, &s3.GetBucketLifecycleConfigurationInput{Bucket: b})
			return err
		}, "NoSuchLifecycleConfiguration"},
		{"GetBucketEncryption", func() error {
			_, err := c.GetBucketEncryption(ctx, &s3.GetBucketEncryptionInput{Bucket: b})
			return err
		}, "ServerSideEncryptionConfigurationNotFoundError"},
		{"GetBucketWebsite", func() error { _, err := c.GetBucketWebsite(ctx, &s3.GetBucketWebsiteInput{Bucket: b}); return err }, "NoSuchWebsiteConfiguration"},
		{"GetObjectLockConfiguration", func() error {
			_, err := c.GetObjectLockConfiguration(ctx, &s3.GetObjectLockConfigurationInput{Bucket: b})
			return err
		}, "ObjectLockConfigurationNotFoundError"},
		{"GetPublicAccessBlock", func() error {
			_, err := c.GetPublicAccessBlock(ctx, &s3.GetPublicAccessBlockInput{Bucket: b})
			return err
		}, "NoSuchPublicAccessBlockConfiguration"},
		{"GetBucketOwnershipControls", func() error {
			_, err := c.GetBucketOwnershipControls(ctx, &s3.GetBucketOwnershipControlsInput{Bucket: b})
			return err
		}, "OwnershipControlsNotFoundError"},
		{"GetBucketReplication", func() error {
			_, err := c.GetBucketReplication(ctx, &s3.GetBucketReplicationInput{Bucket: b})
			return err
		}, "ReplicationConfigurationNotFoundError"},
		{"GetBucketTagging", func() error { _, err := c.GetBucketTagging(ctx, &s3.GetBucketTaggingInput{Bucket: b}); return err }, "NoSuchTagSet"},
		{"GetBucketAccelerateConfiguration", func() error {
			_, err := c.GetBucketAccelerateConfiguration(ctx, &s3.GetBucketAccelerateConfigurationInput{Bucket: b})
			return err
		}, ""},
		{"GetBucketLogging", func() error { _, err := c.GetBucketLogging(ctx, &s3.GetBucketLoggingInput{Bucket: b}); return err }, ""},
		{"GetBucketNotificationConfiguration", func() error {
			_, err := c.GetBucketNotificationConfiguration(ctx, &s3.GetBucketNotificationConfigurationInput{Bucket: b})
			return err
		}, ""},
		{"GetBucketRequestPayment", func() error {
			out, err := c.GetBucketRequestPayment(ctx, &s3.GetBucketRequestPaymentInput{Bucket: b})
			if err == nil && out.Payer != types.PayerBucketOwner {
				return fmt.Errorf("payer %q", out.Payer)
			}
			return err
		}, ""},
		{"GetObjectTagging", func() error {
			out, err := c.GetObjectTagging(ctx, &s3.GetObjectTaggingInput{Bucket: b, Key: aws.String("k")})
			if err == nil && len(out.TagSet) != 0 {
				return fmt.Errorf("tags %+v", out.TagSet)
			}
			return err
		}, ""},
		{"GetObjectTagging of no object", func() error {
			_, err := c.GetObjectTagging(ctx, &s3.GetObjectTaggingInput{Bucket: b, Key: aws.String("nope")})
			return err
		}, "NoSuchKey"},
		{"GetBucketCors of no bucket", func() error {
			_, err := c.GetBucketCors(ctx, &s3.GetBucketCorsInput{Bucket: aws.String("nope")})
			return err
		}, "NoSuchBucket"},
	} {
		if err := tc.call(); apiCode(err) != tc.want || tc.want == "" && err != nil {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
}
