package s3api_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/md5"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/feature/s3/transfermanager"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/nimbus-run/nimbus/internal/data"
	"github.com/nimbus-run/nimbus/internal/keys"
	"github.com/nimbus-run/nimbus/internal/node"
	"github.com/nimbus-run/nimbus/internal/node/nodetest"
)

// startS3 starts a node that checks signatures and returns an S3 client
// with a real access key, and one with a wrong secret.
func startS3(t *testing.T) (*node.Node, *s3.Client, *s3.Client) {
	t.Helper()
	n := nodetest.Start(t, node.Config{Dev: false})
	k, err := n.Keys.Create(context.Background(), "s3-test", keys.KindAWS)
	if err != nil {
		t.Fatal(err)
	}
	mk := func(secret string) *s3.Client {
		return s3.New(s3.Options{
			Region: "us-east-1", BaseEndpoint: aws.String(n.URL()), UsePathStyle: true,
			Credentials: credentials.NewStaticCredentialsProvider(k.ID, secret, ""),
		})
	}
	return n, mk(k.Secret), mk(strings.Repeat("x", 40))
}

func apiCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

func TestS3SDK(t *testing.T) {
	nd, c, bad := startS3(t)
	ctx := context.Background()
	if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("photos")}); err != nil {
		t.Fatal(err)
	}
	lb, err := c.ListBuckets(ctx, &s3.ListBucketsInput{})
	if err != nil || len(lb.Buckets) != 1 || *lb.Buckets[0].Name != "photos" {
		t.Fatalf("ListBuckets: %+v %v", lb, err)
	}
	body := []byte("hello, nimbus")
	put, err := c.PutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String("photos"), Key: aws.String("dir/a b.txt"), Body: bytes.NewReader(body),
		ContentType: aws.String("text/plain"), Metadata: map[string]string{"owner": "ada"},
	})
	if err != nil {
		t.Fatal(err)
	}
	sum := md5.Sum(body)
	if *put.ETag != `"`+hex.EncodeToString(sum[:])+`"` {
		t.Fatalf("ETag %s, want the MD5", *put.ETag)
	}
	get, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("photos"), Key: aws.String("dir/a b.txt"), Range: aws.String("bytes=7-12")})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(get.Body)
	get.Body.Close()
	if string(got) != "nimbus" || *get.ContentRange != "bytes 7-12/13" || get.Metadata["owner"] != "ada" {
		t.Fatalf("GetObject range: %q %v %v", got, *get.ContentRange, get.Metadata)
	}
	// A whole object comes with its SHA-256 to a client that asks, and
	// the SDK checks the body against it.
	whole, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("photos"), Key: aws.String("dir/a b.txt"), ChecksumMode: types.ChecksumModeEnabled})
	if err != nil {
		t.Fatal(err)
	}
	got, err = io.ReadAll(whole.Body)
	whole.Body.Close()
	if sha := sha256.Sum256(body); err != nil || string(got) != string(body) || whole.ChecksumSHA256 == nil || *whole.ChecksumSHA256 != base64.StdEncoding.EncodeToString(sha[:]) {
		t.Fatalf("GetObject with checksums: %q, %v, checksum %v", got, err, whole.ChecksumSHA256)
	}
	head, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("photos"), Key: aws.String("dir/a b.txt")})
	if err != nil || *head.ContentLength != 13 || *head.ContentType != "text/plain" {
		t.Fatalf("HeadObject: %+v %v", head, err)
	}
	// Conditional reads, as caches and browsers make them (RFC 9110's
	// order: If-Match before If-Unmodified-Since, If-None-Match before
	// If-Modified-Since).
	then, before, other := head.LastModified, head.LastModified.Add(-time.Hour), aws.String(`"other"`)
	for _, tc := range []struct {
		name string
		in   s3.GetObjectInput
		code string // "": the object
	}{
		{"If-None-Match its ETag", s3.GetObjectInput{IfNoneMatch: head.ETag}, "NotModified"},
		{"If-None-Match another", s3.GetObjectInput{IfNoneMatch: other}, ""},
		{"If-Match another", s3.GetObjectInput{IfMatch: other}, "PreconditionFailed"},
		{"If-Match its ETag", s3.GetObjectInput{IfMatch: head.ETag}, ""},
		{"If-Modified-Since its time", s3.GetObjectInput{IfModifiedSince: then}, "NotModified"},
		{"If-Modified-Since before", s3.GetObjectInput{IfModifiedSince: &before}, ""},
		{"If-Unmodified-Since before", s3.GetObjectInput{IfUnmodifiedSince: &before}, "PreconditionFailed"},
		{"If-Match over If-Unmodified-Since", s3.GetObjectInput{IfMatch: head.ETag, IfUnmodifiedSince: &before}, ""},
		{"If-None-Match over If-Modified-Since", s3.GetObjectInput{IfNoneMatch: other, IfModifiedSince: then}, ""},
	} {
		in := tc.in
		in.Bucket, in.Key = aws.String("photos"), aws.String("dir/a b.txt")
		out, err := c.GetObject(ctx, &in)
		if tc.code != "" {
			if apiCode(err) != tc.code {
				t.Errorf("GetObject %s: %v, want %s", tc.name, err, tc.code)
			}
			continue
		}
		if err != nil {
			t.Errorf("GetObject %s: %v", tc.name, err)
			continue
		}
		got, err := io.ReadAll(out.Body)
		out.Body.Close()
		if err != nil || string(got) != string(body) {
			t.Errorf("GetObject %s: %q, %v", tc.name, got, err)
		}
	}
	if _, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("photos"), Key: aws.String("dir/a b.txt"), IfNoneMatch: head.ETag}); apiCode(err) != "NotModified" {
		t.Errorf("HeadObject If-None-Match its ETag: %v, want NotModified", err)
	}
	cp, err := c.CopyObject(ctx, &s3.CopyObjectInput{Bucket: aws.String("photos"), Key: aws.String("copy.txt"), CopySource: aws.String("photos/dir/a%20b.txt")})
	if err != nil {
		t.Fatal(err)
	}
	if *cp.CopyObjectResult.ETag != *put.ETag {
		t.Errorf("copy ETag %s, want the source's %s", *cp.CopyObjectResult.ETag, *put.ETag)
	}
	// Conditions on the copy's source: any that does not hold is 412.
	for _, in := range []s3.CopyObjectInput{
		{CopySourceIfMatch: other},
		{CopySourceIfNoneMatch: head.ETag},
		{CopySourceIfUnmodifiedSince: &before},
		{CopySourceIfModifiedSince: then},
	} {
		in.Bucket, in.Key, in.CopySource = aws.String("photos"), aws.String("copy2.txt"), aws.String("photos/dir/a%20b.txt")
		if _, err := c.CopyObject(ctx, &in); apiCode(err) != "PreconditionFailed" {
			t.Errorf("CopyObject with a source condition that does not hold (%+v): %v, want PreconditionFailed", in, err)
		}
	}
	if _, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("photos"), Key: aws.String("copy2.txt")}); err == nil {
		t.Error("a refused copy left copy2.txt")
	}
	if _, err := c.CopyObject(ctx, &s3.CopyObjectInput{Bucket: aws.String("photos"), Key: aws.String("copy2.txt"), CopySource: aws.String("photos/dir/a%20b.txt"),
		CopySourceIfMatch: head.ETag, CopySourceIfModifiedSince: &before}); err != nil {
		t.Errorf("CopyObject with source conditions that hold: %v", err)
	}
	if _, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String("photos"), Key: aws.String("copy2.txt")}); err != nil {
		t.Fatal(err)
	}
	// An object put through the Nimbus API has the SHA-256 for ETag, in
	// S3's answers too.
	native := []byte("written natively")
	if _, err := nd.Data.PutObject(ctx, "photos", "native.txt", bytes.NewReader(native), int64(len(native)), data.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	nh, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("photos"), Key: aws.String("native.txt")})
	if sha := sha256.Sum256(native); err != nil || *nh.ETag != `"`+hex.EncodeToString(sha[:])+`"` {
		t.Fatalf("HeadObject of a natively put object: %v, want ETag %x", err, sha)
	}
	if _, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String("photos"), Key: aws.String("native.txt")}); err != nil {
		t.Fatal(err)
	}
	lo, err := c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("photos"), Delimiter: aws.String("/")})
	if err != nil || len(lo.Contents) != 1 || *lo.Contents[0].Key != "copy.txt" || len(lo.CommonPrefixes) != 1 || *lo.CommonPrefixes[0].Prefix != "dir/" {
		t.Fatalf("ListObjectsV2: %+v %v", lo, err)
	}
	// Pagination with continuation tokens.
	for i := range 5 {
		if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("photos"), Key: aws.String("p/" + string(rune('a'+i))), Body: strings.NewReader("x")}); err != nil {
			t.Fatal(err)
		}
	}
	pg := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: aws.String("photos"), Prefix: aws.String("p/"), MaxKeys: aws.Int32(2)})
	n := 0
	for pg.HasMorePages() {
		p, err := pg.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		n += len(p.Contents)
	}
	if n != 5 {
		t.Fatalf("paged %d objects, want 5", n)
	}
	// Conditional writes: create-if-absent, replace-if-unchanged.
	lock, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("photos"), Key: aws.String("lock"), Body: strings.NewReader("a"), IfNoneMatch: aws.String("*")})
	if err != nil {
		t.Fatalf("PutObject If-None-Match * on a new key: %v", err)
	}
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("photos"), Key: aws.String("lock"), Body: strings.NewReader("b"), IfNoneMatch: aws.String("*")}); apiCode(err) != "PreconditionFailed" {
		t.Fatalf("PutObject If-None-Match * over an object: %v, want PreconditionFailed", err)
	}
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("photos"), Key: aws.String("lock"), Body: strings.NewReader("b"), IfMatch: aws.String(`"stale"`)}); apiCode(err) != "PreconditionFailed" {
		t.Fatalf("PutObject If-Match another ETag: %v, want PreconditionFailed", err)
	}
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("photos"), Key: aws.String("lock"), Body: strings.NewReader("b"), IfMatch: lock.ETag}); err != nil {
		t.Fatalf("PutObject If-Match its ETag: %v", err)
	}
	long := strings.Repeat("k", 1025) // over S3's key limit: an error of its own
	del, err := c.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: aws.String("photos"), Delete: &types.Delete{Objects: []types.ObjectIdentifier{
		{Key: aws.String("p/a")}, {Key: aws.String(long)}, {Key: aws.String("p/b")}, {Key: aws.String("p/never")}}}})
	if err != nil || len(del.Deleted) != 3 || aws.ToString(del.Deleted[0].Key) != "p/a" || aws.ToString(del.Deleted[1].Key) != "p/b" ||
		aws.ToString(del.Deleted[2].Key) != "p/never" || len(del.Errors) != 1 || aws.ToString(del.Errors[0].Key) != long {
		t.Fatalf("DeleteObjects: %+v %v; want p/a, p/b and p/never deleted in order, the long key failed", del, err)
	}
	if _, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("photos"), Key: aws.String("p/b")}); err == nil {
		t.Fatal("p/b is still there after DeleteObjects")
	}
	if _, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String("photos"), Key: aws.String("copy.txt")}); err != nil {
		t.Fatal(err)
	}

	// Errors in S3's shape.
	for _, tc := range []struct {
		name string
		do   func() error
		code string
	}{
		{"NoSuchKey", func() error {
			_, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("photos"), Key: aws.String("nope")})
			return err
		}, "NoSuchKey"},
		{"NoSuchBucket", func() error {
			_, err := c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("nope")})
			return err
		}, "NoSuchBucket"},
		{"InvalidRange", func() error {
			_, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("photos"), Key: aws.String("dir/a b.txt"), Range: aws.String("bytes=100-")})
			return err
		}, "InvalidRange"},
		{"SignatureDoesNotMatch", func() error {
			_, err := bad.ListBuckets(ctx, &s3.ListBucketsInput{})
			return err
		}, "SignatureDoesNotMatch"},
		{"BucketNotEmpty", func() error {
			_, err := c.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: aws.String("photos")})
			return err
		}, "BucketNotEmpty"},
		{"InvalidBucketName", func() error {
			_, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("No_Such")})
			return err
		}, "InvalidBucketName"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.do(); apiCode(err) != tc.code {
				t.Fatalf("err = %v, want %s", err, tc.code)
			}
		})
	}
}

// TestS3Multipart uploads 50 MB with the transfer manager (multipart, 8 MiB
// parts, concurrent) and reads it back.
func TestS3Multipart(t *testing.T) {
	n, c, _ := startS3(t)
	ctx := context.Background()
	if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("big")}); err != nil {
		t.Fatal(err)
	}
	body := make([]byte, 50<<20)
	rand.Read(body)
	tm := transfermanager.New(c, func(o *transfermanager.Options) { o.PartSizeBytes = 8 << 20 })
	if _, err := tm.UploadObject(ctx, &transfermanager.UploadObjectInput{Bucket: aws.String("big"), Key: aws.String("blob"), Body: bytes.NewReader(body)}); err != nil {
		t.Fatal(err)
	}
	head, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("big"), Key: aws.String("blob")})
	if err != nil {
		t.Fatal(err)
	}
	if *head.ContentLength != int64(len(body)) || !strings.HasSuffix(*head.ETag, `-7"`) {
		t.Fatalf("head: %d bytes, ETag %s; want %d bytes, a 7-part ETag", *head.ContentLength, *head.ETag, len(body))
	}
	get, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("big"), Key: aws.String("blob")})
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(get.Body)
	get.Body.Close()
	if err != nil || !bytes.Equal(got, body) {
		t.Fatalf("read back %d bytes (%v), equal %v", len(got), err, bytes.Equal(got, body))
	}
	// The transfer manager's download asks for part 1 first and fetches
	// the other parts in parallel when the answer counts them.
	dl, err := os.CreateTemp(t.TempDir(), "download")
	if err != nil {
		t.Fatal(err)
	}
	defer dl.Close()
	if _, err := tm.DownloadObject(ctx, &transfermanager.DownloadObjectInput{Bucket: aws.String("big"), Key: aws.String("blob"), WriterAt: dl}); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(dl.Name()); err != nil || !bytes.Equal(got, body) {
		t.Fatalf("transfer manager download: %d bytes (%v), equal %v", len(got), err, bytes.Equal(got, body))
	}
	// A copy is one part: S3 gives it the MD5 of its bytes.
	cp, err := c.CopyObject(ctx, &s3.CopyObjectInput{Bucket: aws.String("big"), Key: aws.String("blob-copy"), CopySource: aws.String("big/blob")})
	if sum := md5.Sum(body); err != nil || *cp.CopyObjectResult.ETag != `"`+hex.EncodeToString(sum[:])+`"` {
		t.Fatalf("copy of a multipart object: %v, want ETag %x", err, sum)
	}
	// Parts by number: six of 8 MiB and the last 2 MiB; the copy has one.
	for _, tc := range []struct {
		key         string
		part        int32
		start, size int
		count       int32 // 0: not stated (one part)
	}{
		{"blob", 2, 8 << 20, 8 << 20, 7}, {"blob", 7, 48 << 20, 2 << 20, 7}, {"blob-copy", 1, 0, 50 << 20, 0},
	} {
		head, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("big"), Key: aws.String(tc.key), PartNumber: aws.Int32(tc.part)})
		if err != nil || *head.ContentLength != int64(tc.size) || aws.ToInt32(head.PartsCount) != tc.count {
			t.Fatalf("head of %s part %d: %v; want %d bytes of %d parts", tc.key, tc.part, err, tc.size, tc.count)
		}
		get, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("big"), Key: aws.String(tc.key), PartNumber: aws.Int32(tc.part)})
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(get.Body)
		get.Body.Close()
		if err != nil || !bytes.Equal(got, body[tc.start:tc.start+tc.size]) || aws.ToInt32(get.PartsCount) != tc.count {
			t.Fatalf("get of %s part %d: %d bytes (%v), %d parts; want bytes %d-%d of %d parts", tc.key, tc.part, len(got), err, aws.ToInt32(get.PartsCount), tc.start, tc.start+tc.size, tc.count)
		}
	}
	for _, tc := range []struct {
		key  string
		part int32
	}{{"blob", 8}, {"blob-copy", 2}} {
		if _, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("big"), Key: aws.String(tc.key), PartNumber: aws.Int32(tc.part)}); apiCode(err) != "InvalidPartNumber" {
			t.Errorf("get of %s part %d: %v, want InvalidPartNumber", tc.key, tc.part, err)
		}
	}
	// Abort and ListParts.
	up, err := c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String("big"), Key: aws.String("x")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.UploadPart(ctx, &s3.UploadPartInput{Bucket: aws.String("big"), Key: aws.String("x"), UploadId: up.UploadId, PartNumber: aws.Int32(1), Body: bytes.NewReader([]byte("part"))}); err != nil {
		t.Fatal(err)
	}
	// A part uploaded again replaces the first, whose info goes at once.
	if _, err := c.UploadPart(ctx, &s3.UploadPartInput{Bucket: aws.String("big"), Key: aws.String("x"), UploadId: up.UploadId, PartNumber: aws.Int32(1), Body: bytes.NewReader([]byte("part"))}); err != nil {
		t.Fatal(err)
	}
	lp, err := c.ListParts(ctx, &s3.ListPartsInput{Bucket: aws.String("big"), Key: aws.String("x"), UploadId: up.UploadId})
	if err != nil || len(lp.Parts) != 1 || *lp.Parts[0].Size != 4 {
		t.Fatalf("ListParts: %+v %v", lp, err)
	}
	uploads, err := n.Store.JS.Stream(ctx, "OBJ_"+data.UploadsBucket)
	if err != nil {
		t.Fatal(err)
	}
	infoSubj := "$O." + data.UploadsBucket + ".M." + base64.URLEncoding.EncodeToString([]byte(*up.UploadId+"/1"))
	if si, err := uploads.Info(ctx, jetstream.WithSubjectFilter(infoSubj)); err != nil || si.State.Subjects[infoSubj] != 1 {
		t.Fatalf("the part uploaded twice has %v infos (%v), want 1", si.State.Subjects, err)
	}
	// A conditional completion over an existing object is refused, and
	// the upload stays to be completed or aborted.
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("big"), Key: aws.String("x"), Body: strings.NewReader("there")}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: aws.String("big"), Key: aws.String("x"), UploadId: up.UploadId, IfNoneMatch: aws.String("*"),
		MultipartUpload: &types.CompletedMultipartUpload{Parts: []types.CompletedPart{{PartNumber: aws.Int32(1), ETag: lp.Parts[0].ETag}}}}); apiCode(err) != "PreconditionFailed" {
		t.Fatalf("CompleteMultipartUpload If-None-Match * over an object: %v, want PreconditionFailed", err)
	}
	if lp, err := c.ListParts(ctx, &s3.ListPartsInput{Bucket: aws.String("big"), Key: aws.String("x"), UploadId: up.UploadId}); err != nil || len(lp.Parts) != 1 {
		t.Fatalf("ListParts after a refused completion: %+v %v", lp, err)
	}
	if _, err := c.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: aws.String("big"), Key: aws.String("x"), UploadId: up.UploadId}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ListParts(ctx, &s3.ListPartsInput{Bucket: aws.String("big"), Key: aws.String("x"), UploadId: up.UploadId}); apiCode(err) != "NoSuchUpload" {
		t.Fatalf("ListParts after abort: %v", err)
	}
}

// TestS3Routing: an S3-signed request goes to S3, anything else to the
// gateway, on the same listener.
func TestS3Routing(t *testing.T) {
	n, _, _ := startS3(t)
	resp, err := http.Get(n.URL() + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("healthz: %v %v", resp, err)
	}
	resp.Body.Close()
	req, _ := http.NewRequest(http.MethodGet, n.URL()+"/", nil)
	req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=NMBKX/20240101/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-date, Signature="+strings.Repeat("0", 64))
	req.Header.Set("X-Amz-Date", "20240101T000000Z")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 403 || !strings.Contains(string(b), "<Code>") {
		t.Fatalf("S3-signed request: %d %s, want an S3 XML 403", resp.StatusCode, b)
	}
}

// TestS3PresignedURLs: URLs presigned by the AWS SDK's presign client
// (SigV4 in the query string, how browsers upload to and download from S3
// without credentials) work for GET, HEAD and PUT, and a tampered, expired
// or wrongly signed one gets S3's 403.
func TestS3PresignedURLs(t *testing.T) {
	ctx := context.Background()
	_, client, wrong := startS3(t)
	if _, err := client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("shared")}); err != nil {
		t.Fatal(err)
	}
	presign := s3.NewPresignClient(client)
	minute := s3.WithPresignExpires(time.Minute)

	// Upload through a presigned PUT, with no credentials of its own.
	put, err := presign.PresignPutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("shared"), Key: aws.String("up/a b.txt")}, minute)
	if err != nil {
		t.Fatal(err)
	}
	// As a browser page of another origin sends it: a preflight, then
	// the PUT.
	req, _ := http.NewRequest(http.MethodOptions, put.URL, nil)
	req.Header.Set("Origin", "https://app.example.com")
	req.Header.Set("Access-Control-Request-Method", "PUT")
	req.Header.Set("Access-Control-Request-Headers", "content-type")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent || resp.Header.Get("Access-Control-Allow-Origin") != "*" || !strings.Contains(resp.Header.Get("Access-Control-Allow-Methods"), "PUT") {
		t.Fatalf("preflight of a presigned PUT: %d %v", resp.StatusCode, resp.Header)
	}
	req, _ = http.NewRequest(put.Method, put.URL, strings.NewReader("uploaded by a browser"))
	for k, v := range put.SignedHeader {
		req.Header[k] = v
	}
	req.Header.Set("Origin", "https://app.example.com")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Fatalf("cross-origin presigned PUT: %d %v", resp.StatusCode, resp.Header)
	}

	get, err := presign.PresignGetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("shared"), Key: aws.String("up/a b.txt")}, minute)
	if err != nil {
		t.Fatal(err)
	}
	req, _ = http.NewRequest(get.Method, get.URL, nil)
	if status, body := do(t, req); status != 200 || body != "uploaded by a browser" {
		t.Fatalf("presigned GET: %d %q", status, body)
	}
	head, err := presign.PresignHeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("shared"), Key: aws.String("up/a b.txt")}, minute)
	if err != nil {
		t.Fatal(err)
	}
	req, _ = http.NewRequest(head.Method, head.URL, nil)
	if status, _ := do(t, req); status != 200 {
		t.Fatalf("presigned HEAD: %d", status)
	}

	refused := func(what, url, code string) string {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		status, body := do(t, req)
		if status != 403 || !strings.Contains(body, "<Code>"+code+"</Code>") {
			t.Errorf("%s: %d %s, want 403 %s", what, status, body, code)
		}
		return body
	}
	// Another key under the same signature.
	refused("tampered key", strings.Replace(get.URL, "a%20b.txt", "other.txt", 1), "SignatureDoesNotMatch")
	// A longer life than was signed.
	refused("tampered expiry", strings.Replace(get.URL, "X-Amz-Expires=60", "X-Amz-Expires=600", 1), "SignatureDoesNotMatch")
	bad, err := s3.NewPresignClient(wrong).PresignGetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("shared"), Key: aws.String("up/a b.txt")}, minute)
	if err != nil {
		t.Fatal(err)
	}
	refused("wrong secret", bad.URL, "SignatureDoesNotMatch")
	short, err := presign.PresignGetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("shared"), Key: aws.String("up/a b.txt")}, s3.WithPresignExpires(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond)
	if body := refused("expired", short.URL, "AccessDenied"); !strings.Contains(body, "<Message>Request has expired at 20") {
		t.Errorf("expired URL: %s, want S3's message, with the time it expired", body)
	}
}

// do sends req and returns its status and body.
func do(t *testing.T, req *http.Request) (int, string) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestS3Checksums: uploads carrying a checksum the AWS SDK computed (each
// of S3's algorithms, as a trailer of an aws-chunked body or a header) or
// a Content-MD5 are stored, and the checksum is echoed; a sum that does
// not match the body is 400 BadDigest and stores nothing, leaving an
// object it would have replaced as it was; a malformed one is refused.
func TestS3Checksums(t *testing.T) {
	ctx := context.Background()
	n, c, _ := startS3(t)
	bucket := aws.String("sums")
	if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: bucket}); err != nil {
		t.Fatal(err)
	}
	body := bytes.Repeat([]byte("integrity "), 100_000) // 1 MB: several aws-chunked chunks
	content := func(key string) string {
		t.Helper()
		out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: bucket, Key: aws.String(key)})
		if apiCode(err) == "NoSuchKey" {
			return "<none>"
		}
		if err != nil {
			t.Fatal(err)
		}
		defer out.Body.Close()
		b, _ := io.ReadAll(out.Body)
		return string(b)
	}

	sha := sha256.Sum256(body)
	for _, alg := range []types.ChecksumAlgorithm{types.ChecksumAlgorithmCrc32, types.ChecksumAlgorithmCrc32c,
		types.ChecksumAlgorithmCrc64nvme, types.ChecksumAlgorithmSha1, types.ChecksumAlgorithmSha256} {
		out, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: bucket, Key: aws.String("ok-" + string(alg)), Body: bytes.NewReader(body), ChecksumAlgorithm: alg})
		if err != nil {
			t.Fatalf("put with %s: %v", alg, err)
		}
		echoed := map[types.ChecksumAlgorithm]*string{types.ChecksumAlgorithmCrc32: out.ChecksumCRC32, types.ChecksumAlgorithmCrc32c: out.ChecksumCRC32C,
			types.ChecksumAlgorithmCrc64nvme: out.ChecksumCRC64NVME, types.ChecksumAlgorithmSha1: out.ChecksumSHA1, types.ChecksumAlgorithmSha256: out.ChecksumSHA256}[alg]
		if echoed == nil || *echoed == "" {
			t.Errorf("put with %s: the checksum was not echoed", alg)
		}
		if alg == types.ChecksumAlgorithmSha256 && (echoed == nil || *echoed != base64.StdEncoding.EncodeToString(sha[:])) {
			t.Errorf("put with SHA256 echoed %v, want the body's", echoed)
		}
		if content("ok-"+string(alg)) != string(body) {
			t.Errorf("put with %s: stored something else", alg)
		}
	}
	sum := md5.Sum(body)
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: bucket, Key: aws.String("kept"), Body: bytes.NewReader(body),
		ContentMD5: aws.String(base64.StdEncoding.EncodeToString(sum[:]))}); err != nil {
		t.Fatalf("put with the right Content-MD5: %v", err)
	}

	wrongMD5 := md5.Sum([]byte("something else"))
	for name, in := range map[string]*s3.PutObjectInput{
		"crc32":       {ChecksumCRC32: aws.String("AAAAAA==")},
		"crc64nvme":   {ChecksumCRC64NVME: aws.String("AAAAAAAAAAA=")},
		"sha256":      {ChecksumSHA256: aws.String(base64.StdEncoding.EncodeToString(make([]byte, 32)))},
		"content-md5": {ContentMD5: aws.String(base64.StdEncoding.EncodeToString(wrongMD5[:]))},
	} {
		for _, key := range []string{"new-" + name, "kept"} {
			in.Bucket, in.Key, in.Body = bucket, aws.String(key), bytes.NewReader([]byte("tampered on the way"))
			if _, err := c.PutObject(ctx, in); apiCode(err) != "BadDigest" {
				t.Errorf("put %s with a wrong %s: %v, want BadDigest", key, name, err)
			}
		}
		if got := content("new-" + name); got != "<none>" {
			t.Errorf("a put refused for its %s stored %d bytes", name, len(got))
		}
	}
	if content("kept") != string(body) {
		t.Error("refused puts changed the object they would have replaced")
	}
	// The node's metrics count them as the client's errors.
	resp, err := http.Get(n.URL() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(metrics), `nimbus_bucket_operations_total{bucket="sums",op="put",result="invalid"} 8`) {
		t.Errorf("metrics of 8 refused puts: %s", grepLines(string(metrics), `bucket="sums",op="put"`))
	}
	for name, in := range map[string]*s3.PutObjectInput{
		"Content-MD5 not base64": {ContentMD5: aws.String("not base64!")},
		"CRC32 of 3 bytes":       {ChecksumCRC32: aws.String("AAAA")},
	} {
		in.Bucket, in.Key, in.Body = bucket, aws.String("malformed"), bytes.NewReader(body)
		if _, err := c.PutObject(ctx, in); apiCode(err) != "InvalidDigest" && apiCode(err) != "InvalidRequest" {
			t.Errorf("%s: %v, want InvalidDigest or InvalidRequest", name, err)
		}
	}

	// A part with a wrong checksum is refused and not listed.
	up, err := c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: bucket, Key: aws.String("parts")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.UploadPart(ctx, &s3.UploadPartInput{Bucket: bucket, Key: aws.String("parts"), UploadId: up.UploadId, PartNumber: aws.Int32(1),
		Body: bytes.NewReader(body), ChecksumCRC32C: aws.String("AAAAAA==")}); apiCode(err) != "BadDigest" {
		t.Errorf("part with a wrong CRC32C: %v, want BadDigest", err)
	}
	part2, err := c.UploadPart(ctx, &s3.UploadPartInput{Bucket: bucket, Key: aws.String("parts"), UploadId: up.UploadId, PartNumber: aws.Int32(2),
		Body: bytes.NewReader(body), ChecksumAlgorithm: types.ChecksumAlgorithmCrc32c})
	if err != nil || part2.ChecksumCRC32C == nil {
		t.Fatalf("part with its CRC32C: %+v, %v", part2, err)
	}
	parts, err := c.ListParts(ctx, &s3.ListPartsInput{Bucket: bucket, Key: aws.String("parts"), UploadId: up.UploadId})
	if err != nil || len(parts.Parts) != 1 || *parts.Parts[0].PartNumber != 2 {
		t.Fatalf("parts after one refused and one stored: %+v, %v", parts, err)
	}
	// The part keeps its checksum: listed, and compared with the one a
	// completion names.
	if got := parts.Parts[0].ChecksumCRC32C; got == nil || *got != *part2.ChecksumCRC32C {
		t.Errorf("ListParts gives the part CRC32C %v, want %s", got, *part2.ChecksumCRC32C)
	}
	complete := func(p types.CompletedPart) error {
		p.PartNumber, p.ETag = aws.Int32(2), part2.ETag
		_, err := c.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: bucket, Key: aws.String("parts"), UploadId: up.UploadId,
			MultipartUpload: &types.CompletedMultipartUpload{Parts: []types.CompletedPart{p}}})
		return err
	}
	for name, p := range map[string]types.CompletedPart{
		"another CRC32C":        {ChecksumCRC32C: aws.String("AAAAAA==")},
		"a CRC32, not CRC32C":   {ChecksumCRC32: part2.ChecksumCRC32C},
		"the CRC32C and a SHA1": {ChecksumCRC32C: part2.ChecksumCRC32C, ChecksumSHA1: aws.String("AAAAAAAAAAAAAAAAAAAAAAAAAAA=")},
	} {
		if err := complete(p); apiCode(err) != "InvalidPart" {
			t.Errorf("completion naming %s for the part: %v, want InvalidPart", name, err)
		}
	}
	if err := complete(types.CompletedPart{ChecksumCRC32C: part2.ChecksumCRC32C}); err != nil {
		t.Fatalf("completion naming the part's CRC32C: %v", err)
	}
	if got := content("parts"); got != string(body) {
		t.Errorf("the completed upload holds %d bytes, want the part's %d", len(got), len(body))
	}
}

// TestS3StoredHeaders: the headers S3 keeps with an object (Cache-Control,
// Content-Disposition, Content-Encoding, Content-Language, Expires) come
// back with every head and get, through copies and multipart uploads;
// response-* parameters override them for one get, presigned too; and a
// gzip-encoded object is served as stored, not inflated.
func TestS3StoredHeaders(t *testing.T) {
	ctx := context.Background()
	_, c, _ := startS3(t)
	bucket := aws.String("site")
	if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: bucket}); err != nil {
		t.Fatal(err)
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte(strings.Repeat("body { color: teal } ", 100)))
	zw.Close()
	expires := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: bucket, Key: aws.String("app.css"), Body: bytes.NewReader(gz.Bytes()),
		ContentType: aws.String("text/css"), CacheControl: aws.String("public, max-age=31536000, immutable"),
		ContentEncoding: aws.String("gzip"), ContentLanguage: aws.String("en"), ContentDisposition: aws.String("inline"),
		Expires: aws.Time(expires)}); err != nil {
		t.Fatal(err)
	}
	check := func(what string, cache, enc, lang, disp *string, exp *string) {
		t.Helper()
		for _, f := range []struct {
			name      string
			got, want *string
		}{
			{"Cache-Control", cache, aws.String("public, max-age=31536000, immutable")},
			{"Content-Encoding", enc, aws.String("gzip")},
			{"Content-Language", lang, aws.String("en")},
			{"Content-Disposition", disp, aws.String("inline")},
			{"Expires", exp, aws.String(expires.Format(http.TimeFormat))},
		} {
			if f.got == nil || *f.got != *f.want {
				t.Errorf("%s: %s = %v, want %q", what, f.name, aws.ToString(f.got), *f.want)
			}
		}
	}
	head, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: bucket, Key: aws.String("app.css")})
	if err != nil {
		t.Fatal(err)
	}
	check("head", head.CacheControl, head.ContentEncoding, head.ContentLanguage, head.ContentDisposition, head.ExpiresString)
	get, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: bucket, Key: aws.String("app.css")})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(get.Body)
	get.Body.Close()
	check("get", get.CacheControl, get.ContentEncoding, get.ContentLanguage, get.ContentDisposition, get.ExpiresString)
	if !bytes.Equal(body, gz.Bytes()) {
		t.Errorf("get returned %d bytes, want the %d gzip bytes as stored", len(body), gz.Len())
	}

	// response-* overrides, for one get.
	over, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: bucket, Key: aws.String("app.css"),
		ResponseContentDisposition: aws.String(`attachment; filename="app.css"`), ResponseContentType: aws.String("application/octet-stream")})
	if err != nil {
		t.Fatal(err)
	}
	over.Body.Close()
	if aws.ToString(over.ContentDisposition) != `attachment; filename="app.css"` || aws.ToString(over.ContentType) != "application/octet-stream" {
		t.Errorf("overridden get: disposition %q, type %q", aws.ToString(over.ContentDisposition), aws.ToString(over.ContentType))
	}
	url, err := s3.NewPresignClient(c).PresignGetObject(ctx, &s3.GetObjectInput{Bucket: bucket, Key: aws.String("app.css"),
		ResponseContentDisposition: aws.String(`attachment; filename="style.css"`)}, s3.WithPresignExpires(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(url.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get("Content-Disposition"); resp.StatusCode != 200 || got != `attachment; filename="style.css"` {
		t.Errorf("presigned get with an override: %d, Content-Disposition %q", resp.StatusCode, got)
	}

	// A copy keeps them; a copy that replaces its metadata takes new ones.
	if _, err := c.CopyObject(ctx, &s3.CopyObjectInput{Bucket: bucket, Key: aws.String("copy.css"), CopySource: aws.String("site/app.css")}); err != nil {
		t.Fatal(err)
	}
	head, err = c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: bucket, Key: aws.String("copy.css")})
	if err != nil {
		t.Fatal(err)
	}
	check("copy", head.CacheControl, head.ContentEncoding, head.ContentLanguage, head.ContentDisposition, head.ExpiresString)
	if _, err := c.CopyObject(ctx, &s3.CopyObjectInput{Bucket: bucket, Key: aws.String("copy.css"), CopySource: aws.String("site/app.css"),
		MetadataDirective: types.MetadataDirectiveReplace, CacheControl: aws.String("no-store")}); err != nil {
		t.Fatal(err)
	}
	head, err = c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: bucket, Key: aws.String("copy.css")})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(head.CacheControl) != "no-store" || head.ContentEncoding != nil {
		t.Errorf("replacing copy: Cache-Control %q, Content-Encoding %q; want no-store and none", aws.ToString(head.CacheControl), aws.ToString(head.ContentEncoding))
	}

	// A multipart upload keeps the headers it was created with.
	up, err := c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: bucket, Key: aws.String("video.mp4"),
		CacheControl: aws.String("max-age=60"), ContentDisposition: aws.String("attachment")})
	if err != nil {
		t.Fatal(err)
	}
	part, err := c.UploadPart(ctx, &s3.UploadPartInput{Bucket: bucket, Key: aws.String("video.mp4"), UploadId: up.UploadId, PartNumber: aws.Int32(1), Body: strings.NewReader("frames")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: bucket, Key: aws.String("video.mp4"), UploadId: up.UploadId,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: []types.CompletedPart{{PartNumber: aws.Int32(1), ETag: part.ETag}}}}); err != nil {
		t.Fatal(err)
	}
	head, err = c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: bucket, Key: aws.String("video.mp4")})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(head.CacheControl) != "max-age=60" || aws.ToString(head.ContentDisposition) != "attachment" {
		t.Errorf("multipart: Cache-Control %q, Content-Disposition %q", aws.ToString(head.CacheControl), aws.ToString(head.ContentDisposition))
	}
}

// grepLines returns the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for line := range strings.Lines(s) {
		if strings.Contains(line, sub) {
			out = append(out, strings.TrimSpace(line))
		}
	}
	return strings.Join(out, "; ")
}

// TestS3UploadPartCopy: a multipart upload made of ranges copied from an
// object in another bucket (UploadPartCopy, which aws s3 cp uses between
// buckets for objects over 8 MB) and an uploaded part holds their bytes,
// and a copied part's ETag is its bytes' MD5. A copy-source condition that
// fails is 412, a malformed range 400 InvalidArgument, a range past the
// source's end 416 InvalidRange, a missing source 404 NoSuchKey.
func TestS3UploadPartCopy(t *testing.T) {
	ctx := context.Background()
	_, c, _ := startS3(t)
	for _, b := range []string{"src", "dst"} {
		if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(b)}); err != nil {
			t.Fatal(err)
		}
	}
	src := make([]byte, 12<<20+77)
	rand.Read(src)
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("src"), Key: aws.String("big file"), Body: bytes.NewReader(src)}); err != nil {
		t.Fatal(err)
	}
	dst, key := aws.String("dst"), aws.String("joined")
	up, err := c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: dst, Key: key})
	if err != nil {
		t.Fatal(err)
	}
	copyPart := func(n int32, in s3.UploadPartCopyInput) (*s3.UploadPartCopyOutput, error) {
		in.Bucket, in.Key, in.UploadId, in.PartNumber = dst, key, up.UploadId, aws.Int32(n)
		if in.CopySource == nil {
			in.CopySource = aws.String("src/big%20file")
		}
		return c.UploadPartCopy(ctx, &in)
	}
	var parts []types.CompletedPart
	for i, rng := range []string{"bytes=0-5242879", "bytes=5242880-10485759"} {
		out, err := copyPart(int32(i+1), s3.UploadPartCopyInput{CopySourceRange: aws.String(rng)})
		if err != nil {
			t.Fatalf("copy of %s: %v", rng, err)
		}
		parts = append(parts, types.CompletedPart{PartNumber: aws.Int32(int32(i + 1)), ETag: out.CopyPartResult.ETag})
	}
	if sum := md5.Sum(src[:5<<20]); *parts[0].ETag != `"`+hex.EncodeToString(sum[:])+`"` {
		t.Errorf("copied part 1 has ETag %s, want its bytes' MD5 %x", *parts[0].ETag, sum)
	}
	tail := []byte("and an uploaded tail")
	out, err := c.UploadPart(ctx, &s3.UploadPartInput{Bucket: dst, Key: key, UploadId: up.UploadId, PartNumber: aws.Int32(3), Body: bytes.NewReader(tail)})
	if err != nil {
		t.Fatal(err)
	}
	parts = append(parts, types.CompletedPart{PartNumber: aws.Int32(3), ETag: out.ETag})

	for name, tc := range map[string]struct {
		in   s3.UploadPartCopyInput
		code string
	}{
		"a failing If-Match":   {s3.UploadPartCopyInput{CopySourceIfMatch: aws.String(`"nope"`)}, "PreconditionFailed"},
		"a suffix range":       {s3.UploadPartCopyInput{CopySourceRange: aws.String("bytes=-100")}, "InvalidArgument"},
		"a range past the end": {s3.UploadPartCopyInput{CopySourceRange: aws.String("bytes=20000000-20000100")}, "InvalidRange"},
		"a missing source":     {s3.UploadPartCopyInput{CopySource: aws.String("src/missing")}, "NoSuchKey"},
	} {
		if _, err := copyPart(4, tc.in); apiCode(err) != tc.code {
			t.Errorf("copy with %s: %v, want %s", name, err, tc.code)
		}
	}

	if _, err := c.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: dst, Key: key, UploadId: up.UploadId,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts}}); err != nil {
		t.Fatal(err)
	}
	get, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: dst, Key: key})
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(get.Body)
	get.Body.Close()
	if want := append(src[:10<<20:10<<20], tail...); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("the joined object has %d bytes (%v), equal %v; want the two copied ranges and the tail, %d bytes", len(got), err, bytes.Equal(got, want), len(want))
	}
}
