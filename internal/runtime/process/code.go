package process

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/nimbus-run/nimbus/internal/function"
)

// bootstrapName is the Lambda custom-runtime entry point.
const bootstrapName = "bootstrap"

// reservedEnv are the variables the runtime sets; a spec may not set them.
// PATH is not among them: a function may choose its own.
var reservedEnv = map[string]bool{
	"AWS_LAMBDA_RUNTIME_API":          true,
	"AWS_LAMBDA_FUNCTION_NAME":        true,
	"AWS_LAMBDA_FUNCTION_VERSION":     true,
	"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": true,
	"AWS_LAMBDA_LOG_GROUP_NAME":       true,
	"AWS_LAMBDA_LOG_STREAM_NAME":      true,
	"AWS_LAMBDA_MAX_CONCURRENCY":      true,
	"AWS_REGION":                      true,
	"AWS_DEFAULT_REGION":              true,
	"_HANDLER":                        true,
	"LAMBDA_TASK_ROOT":                true,
	"TZ":                              true,
}

func checkEnv(spec *function.Spec) error {
	for k := range spec.Env {
		if reservedEnv[k] {
			return function.Invalid("env."+k, "is reserved: the process runtime sets it")
		}
	}
	return nil
}

func digestHex(digest string) (string, error) {
	h, ok := strings.CutPrefix(digest, "sha256:")
	if !ok || len(h) != 64 {
		return "", function.Invalid("code", "must be a digest \"sha256:<64 hex digits>\"")
	}
	if _, err := hex.DecodeString(h); err != nil || strings.ToLower(h) != h {
		return "", function.Invalid("code", "must be a digest \"sha256:<64 lowercase hex digits>\"")
	}
	return h, nil
}

func isZip(b []byte) bool {
	return bytes.HasPrefix(b, []byte("PK\x03\x04")) || bytes.HasPrefix(b, []byte("PK\x05\x06"))
}

// unpack puts code into codeDir/<hexDigest>/ unless it is there. It unpacks
// into a temporary directory and renames it into place, so a crash or a
// concurrent Prepare of the same digest never leaves half a tree.
func (r *Runtime) unpack(ctx context.Context, hexDigest string, code []byte, handler string) error {
	sum := sha256.Sum256(code)
	if hex.EncodeToString(sum[:]) != hexDigest {
		return function.Invalid("code", "content does not match its digest sha256:%s", hexDigest)
	}
	final := filepath.Join(r.codeDir, hexDigest)
	if _, err := os.Stat(final); err == nil {
		return nil
	}
	tmp, err := os.MkdirTemp(r.codeDir, ".unpack-"+hexDigest[:12]+"-")
	if err != nil {
		return fmt.Errorf("unpack: %w", err)
	}
	defer os.RemoveAll(tmp) // a no-op once renamed

	if isZip(code) {
		if err := r.unzip(ctx, tmp, code); err != nil {
			return err
		}
	} else {
		// A lone file is the bootstrap: an ELF binary or a script. With a
		// handler command line the file names are the user's, so they must
		// ship a zip.
		if handler == "" && !bytes.HasPrefix(code, []byte("\x7fELF")) && !bytes.HasPrefix(code, []byte("#!")) {
			return function.Invalid("code", "is neither a zip nor an executable (ELF binary or script starting with #!): "+
				"a process function needs a zip with an executable %q at its root, a single executable, or a handler command line", bootstrapName)
		}
		if err := os.WriteFile(filepath.Join(tmp, bootstrapName), code, 0o755); err != nil {
			return fmt.Errorf("unpack: %w", err)
		}
	}
	// Instances hard-link these files: read-only bits stop a function not
	// running as root from changing the cached copy through its link.
	if err := makeReadOnly(tmp); err != nil {
		return fmt.Errorf("unpack: %w", err)
	}
	if err := os.Rename(tmp, final); err != nil {
		if _, statErr := os.Stat(final); statErr == nil {
			return nil // a concurrent Prepare won
		}
		return fmt.Errorf("unpack: %w", err)
	}
	return nil
}

// unzip extracts code into dir. Entries must stay inside dir: absolute
// names, ".." and symlinks that resolve outside are refused, and sizes are
// counted as written, not as the zip headers claim. Symlinks are created
// after every file, so no file is ever written through one.
func (r *Runtime) unzip(ctx context.Context, dir string, code []byte) error {
	zr, err := zip.NewReader(bytes.NewReader(code), int64(len(code)))
	if err != nil {
		return function.Invalid("code", "unreadable zip: %v", err)
	}
	if len(zr.File) > r.cfg.MaxCodeFiles {
		return function.Invalid("code", "zip holds %d entries: the limit is %d", len(zr.File), r.cfg.MaxCodeFiles)
	}
	type link struct{ name, target string }
	var links []link
	budget := r.cfg.MaxCodeBytes
	for _, f := range zr.File {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("unpack: %w", err)
		}
		name := strings.TrimSuffix(f.Name, "/")
		if name == "" || name == "." {
			continue
		}
		if strings.Contains(f.Name, `\`) || !filepath.IsLocal(name) {
			return function.Invalid("code", "zip entry %q leaves the code directory", f.Name)
		}
		dst := filepath.Join(dir, name)
		mode := f.Mode()
		switch {
		case mode.IsDir():
			if err := os.MkdirAll(dst, 0o755); err != nil {
				return fmt.Errorf("unpack: %w", err)
			}
		case mode&fs.ModeSymlink != 0:
			target, err := readSmall(f, 4096)
			if err != nil {
				return function.Invalid("code", "zip entry %q: %v", f.Name, err)
			}
			if filepath.IsAbs(target) || !filepath.IsLocal(filepath.Join(filepath.Dir(name), target)) {
				return function.Invalid("code", "symlink %q points outside the code directory (%q)", f.Name, target)
			}
			links = append(links, link{name, target})
		case mode.IsRegular():
			if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
				return fmt.Errorf("unpack: %w", err)
			}
			n, err := writeEntry(f, dst, budget, r.cfg.MaxCodeBytes)
			if err != nil {
				return err
			}
			budget -= n
		default:
			return function.Invalid("code", "zip entry %q is a %s: only files, directories and symlinks are allowed", f.Name, mode.Type())
		}
	}
	for _, l := range links {
		dst := filepath.Join(dir, l.name)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return fmt.Errorf("unpack: %w", err)
		}
		if err := os.Symlink(l.target, dst); err != nil {
			return function.Invalid("code", "symlink %q: %v", l.name, err)
		}
	}
	// The lexical check above misses chains through other symlinks
	// (a -> ., then a/b/../../x); resolving each link catches them.
	root, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return fmt.Errorf("unpack: %w", err)
	}
	for _, l := range links {
		real, err := filepath.EvalSymlinks(filepath.Join(dir, l.name))
		if err != nil {
			return function.Invalid("code", "symlink %q does not resolve inside the code: %v", l.name, err)
		}
		if rel, err := filepath.Rel(root, real); err != nil || !filepath.IsLocal(rel) && rel != "." {
			return function.Invalid("code", "symlink %q resolves outside the code directory", l.name)
		}
	}
	return nil
}

func readSmall(f *zip.File, limit int64) (string, error) {
	rc, err := f.Open()
	if err != nil {
		return "", err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, limit+1))
	if err != nil {
		return "", err
	}
	if int64(len(b)) > limit {
		return "", errors.New("symlink target too long")
	}
	return string(b), nil
}

// writeEntry writes f to dst and returns the bytes written, failing with an
// Invalid error past budget.
func writeEntry(f *zip.File, dst string, budget, total int64) (int64, error) {
	rc, err := f.Open()
	if err != nil {
		return 0, function.Invalid("code", "zip entry %q: %v", f.Name, err)
	}
	defer rc.Close()
	perm := os.FileMode(0o644)
	if f.Mode()&0o111 != 0 || filepath.Base(dst) == bootstrapName {
		// Zips made on Windows carry no mode bits; the bootstrap must run.
		perm = 0o755
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			return 0, function.Invalid("code", "zip holds %q twice", f.Name)
		}
		return 0, fmt.Errorf("unpack: %w", err)
	}
	n, err := io.Copy(out, io.LimitReader(rc, budget+1))
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return n, function.Invalid("code", "zip entry %q: %v", f.Name, err)
	}
	if n > budget {
		return n, function.Invalid("code", "unpacks to more than the %d MiB allowed", total>>20)
	}
	return n, nil
}

func makeReadOnly(dir string) error {
	return filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		return os.Chmod(path, info.Mode().Perm()&^0o222)
	})
}

// command resolves what to run for spec in dir (the code or an instance
// directory): the handler command line if set, else dir/bootstrap. It
// returns the executable path and argv.
func (r *Runtime) command(spec *function.Spec, dir string) (string, []string, error) {
	if spec.Handler == "" {
		path := filepath.Join(dir, bootstrapName)
		info, err := os.Stat(path)
		if err != nil || !info.Mode().IsRegular() {
			return "", nil, function.Invalid("code", "has no %q file at its root: a process function needs an executable %q "+
				"(a Lambda custom runtime, or an aws-lambda-go binary named bootstrap), or a handler command line such as \"python3 handler.py\"",
				bootstrapName, bootstrapName)
		}
		if info.Mode().Perm()&0o111 == 0 {
			return "", nil, function.Invalid("code", "%q is not executable", bootstrapName)
		}
		return path, []string{path}, nil
	}
	argv, err := splitCommandLine(spec.Handler)
	if err != nil {
		return "", nil, function.Invalid("handler", "%v", err)
	}
	if len(argv) == 0 {
		return "", nil, function.Invalid("handler", "is empty")
	}
	exe := argv[0]
	if strings.Contains(exe, "/") {
		if !filepath.IsAbs(exe) {
			exe = filepath.Join(dir, exe)
		}
		info, err := os.Stat(exe)
		if err != nil || !info.Mode().IsRegular() || info.Mode().Perm()&0o111 == 0 {
			return "", nil, function.Invalid("handler", "%q is not an executable file in the code", argv[0])
		}
		return exe, argv, nil
	}
	path := r.cfg.Path
	if p, ok := spec.Env["PATH"]; ok {
		path = p
	}
	found, err := lookPath(exe, path)
	if err != nil {
		return "", nil, function.Invalid("handler", "%q is not found in PATH on this node", exe)
	}
	return found, argv, nil
}

func lookPath(file, path string) (string, error) {
	for _, dir := range filepath.SplitList(path) {
		if dir == "" || !filepath.IsAbs(dir) {
			continue // relative PATH entries would depend on the instance directory
		}
		p := filepath.Join(dir, file)
		if info, err := os.Stat(p); err == nil && info.Mode().IsRegular() && info.Mode().Perm()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fs.ErrNotExist
}

// splitCommandLine splits a handler command line into argv the way a POSIX
// shell would for plain words, single and double quotes and backslashes,
// without running a shell: no variables, globs or operators.
func splitCommandLine(s string) ([]string, error) {
	var (
		argv  []string
		cur   strings.Builder
		inArg bool
		quote byte
	)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote == '\'':
			if c == '\'' {
				quote = 0
			} else {
				cur.WriteByte(c)
			}
		case quote == '"':
			switch {
			case c == '"':
				quote = 0
			case c == '\\' && i+1 < len(s) && strings.IndexByte("\"\\$`", s[i+1]) >= 0:
				i++
				cur.WriteByte(s[i])
			default:
				cur.WriteByte(c)
			}
		case c == '\'' || c == '"':
			quote, inArg = c, true
		case c == '\\':
			if i+1 == len(s) {
				return nil, errors.New("ends with a lone backslash")
			}
			i++
			cur.WriteByte(s[i])
			inArg = true
		case c == ' ' || c == '\t' || c == '\n':
			if inArg {
				argv = append(argv, cur.String())
				cur.Reset()
				inArg = false
			}
		case c == 0:
			return nil, errors.New("holds a NUL byte")
		default:
			cur.WriteByte(c)
			inArg = true
		}
	}
	if quote != 0 {
		return nil, fmt.Errorf("has an unclosed %c quote", quote)
	}
	if inArg {
		argv = append(argv, cur.String())
	}
	return argv, nil
}

// linkTree fills dst (existing, empty) with src's tree: directories are
// made, files hard-linked (copied across file systems), symlinks recreated
// as they are. Hard links make an instance directory cost nothing for a
// 20 MB binary; the cached files are read-only (see unpack).
func linkTree(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil || rel == "." {
			return err
		}
		to := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			return os.Mkdir(to, 0o755)
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(path)
			if err != nil {
				return err
			}
			return os.Symlink(target, to)
		case d.Type().IsRegular():
			err := os.Link(path, to)
			if err == nil {
				return nil
			}
			if !errors.Is(err, syscall.EXDEV) && !errors.Is(err, syscall.EPERM) && !errors.Is(err, syscall.EMLINK) {
				return err
			}
			return copyFile(path, to)
		default:
			return nil
		}
	})
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	info, err := in.Stat()
	if err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, info.Mode().Perm())
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
