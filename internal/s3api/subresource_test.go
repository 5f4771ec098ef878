package s3api_test

import (
	"bytes"
	"context"
	"io"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// TestS3UnsupportedSubresources: a request for an S3 feature Nimbus does
// not have (tags, ACLs, CORS and policy documents, versions, ...) names
// it in a subresource of the query, and is refused with 501
// NotImplemented, never taken for the plain request it looks like:
// tagging an object must not overwrite it with the tagging document,
// deleting a bucket's CORS must not delete the bucket.
func TestS3UnsupportedSubresources(t *testing.T) {
	_, c, _ := startS3(t)
	ctx := context.Background()
	for _, b := range []string{"full", "empty"} {
		if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(b)}); err != nil {
			t.Fatal(err)
		}
	}
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
		{"GetObjectTagging", func() error {
			_, err := c.GetObjectTagging(ctx, &s3.GetObjectTaggingInput{Bucket: aws.String("full"), Key: aws.String("k")})
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
		{"GetObjectAcl", func() error {
			_, err := c.GetObjectAcl(ctx, &s3.GetObjectAclInput{Bucket: aws.String("full"), Key: aws.String("k")})
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
		{"GetBucketAcl", func() error {
			_, err := c.GetBucketAcl(ctx, &s3.GetBucketAclInput{Bucket: aws.String("full")})
			return err
		}},
		{"GetBucketTagging", func() error {
			_, err := c.GetBucketTagging(ctx, &s3.GetBucketTaggingInput{Bucket: aws.String("full")})
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
	got, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("full"), Key: aws.String("k")})
	if err != nil {
		t.Fatalf("the object after the refused requests: %v", err)
	}
	b, _ := io.ReadAll(got.Body)
	got.Body.Close()
	if !bytes.Equal(b, body) {
		t.Fatalf("the object holds %q after the refused requests, want %q", b, body)
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
}
