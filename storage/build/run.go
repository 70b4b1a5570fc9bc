package build

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/berth-dev/berth/storage"
)

// run executes a RUN step in a container on the current image and commits its changes.
func (b *builder) run(ctx context.Context, st *state, ins instruction, label string) error {
	fl, err := ins.flagSet("network")
	if err != nil {
		return fmt.Errorf("%w (RUN --mount and --security are not supported)", err)
	}
	network := b.opt.Network
	if v, ok := fl["network"]; ok {
		switch v {
		case "default", "none", "host":
			network = v
		default:
			return fmt.Errorf("RUN --network=%s: use default, none or host: %w", v, ErrSyntax)
		}
	}
	var args []string
	if ins.json {
		args = ins.args
	} else {
		if len(ins.args) == 0 || strings.TrimSpace(ins.args[0]) == "" {
			return fmt.Errorf("RUN needs a command: %w", ErrSyntax)
		}
		script := ins.args[0]
		if len(ins.docs) > 0 {
			if name, ok := heredocName(script); ok && len(ins.docs) == 1 {
				h, _ := ins.heredoc(name)
				if strings.HasPrefix(h.Content, "#!") {
					return fmt.Errorf("RUN heredocs with a #! line are not supported; run the interpreter explicitly, e.g. RUN python3 <<EOF: %w", ErrUnsupported)
				}
				script = h.Content
			} else {
				// The shell understands heredocs itself: hand it the whole text.
				var sb strings.Builder
				sb.WriteString(script + "\n")
				for _, h := range ins.docs {
					sb.WriteString(h.Content + h.Name + "\n")
				}
				script = sb.String()
			}
		}
		args = append(b.shell(st), script)
	}
	if len(args) == 0 {
		return fmt.Errorf("RUN needs a command: %w", ErrSyntax)
	}
	env := st.env()
	if !hasPath(env) {
		env = append(env, DefaultPath)
	}
	key := stepKey(st.image, st.cfg, "run", strings.Join(args, "\x00"), strings.Join(env, "\x00"), network)
	if b.useCache(ctx, st, key, label) {
		return nil
	}
	m, ok := b.store.(Mounter)
	if !ok || b.runner == nil {
		return fmt.Errorf("this build has no container runtime (RUN needs root and berth's runtime): %w", ErrNoRunner)
	}
	if st.image == "" {
		return fmt.Errorf("RUN on an empty image (FROM scratch with nothing copied) has no command to run: %w", ErrStepFailed)
	}
	cid := "build-" + randomHex(12)
	rootfs, err := m.Mount(ctx, cid, st.image)
	if err != nil {
		m.RemoveContainerLayer(context.WithoutCancel(ctx), cid)
		return fmt.Errorf("mount: %w", err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		m.Unmount(cctx, cid)
		m.RemoveContainerLayer(cctx, cid)
	}()
	lw := &lineWriter{p: b.out, tag: label, start: time.Now()}
	wd := st.cfg.WorkingDir
	if wd == "" {
		wd = "/"
	}
	code, err := b.runner.Run(ctx, RunSpec{
		Rootfs: rootfs, Args: args, Env: env, WorkingDir: wd, User: st.cfg.User,
		Network: network, Stdout: lw, Stderr: lw,
	})
	lw.flush()
	if err != nil {
		return fmt.Errorf("run: %w", err)
	}
	if code != 0 {
		return &Error{
			File: b.df.name, Line: ins.line, Instruction: ins.orig, ExitCode: code,
			Output: strings.Join(lw.tail, "\n"),
			Err:    fmt.Errorf("the command exited with code %d: %w", code, ErrStepFailed),
		}
	}
	if err := m.Unmount(ctx, cid); err != nil {
		return fmt.Errorf("unmount: %w", err)
	}
	dropMountpoints(m.UpperDir(cid), layerTree(b.store, st.chains))
	img, err := m.CreateFromDir(ctx, st.image, m.UpperDir(cid), storage.CreateOptions{
		Config: st.cfg, CreatedBy: b.createdBy(st, ins.orig), Comment: "berth build", Author: st.author,
	})
	if err != nil {
		return fmt.Errorf("write layer: %w", err)
	}
	b.committed(st, key, img)
	b.out.printf("%s DONE %.1fs", label, time.Since(lw.start).Seconds())
	return nil
}

// runtimeMountpoints are paths the runtime may create in the rootfs only to mount over them;
// deepest first.
var runtimeMountpoints = []string{
	"etc/resolv.conf", "etc/hosts", "etc/hostname", "etc",
	"dev/pts", "dev/shm", "dev/mqueue", "dev", "proc", "sys",
}

// dropMountpoints removes from a RUN step's upper directory the empty files and directories
// that the runtime created as mount points and the image did not have, so they do not become
// part of the layer.
func dropMountpoints(upper string, lower tree) {
	for _, p := range runtimeMountpoints {
		if _, _, err := lower.lookup(p); err == nil {
			continue
		}
		host := filepath.Join(upper, filepath.FromSlash(p))
		fi, err := os.Lstat(host)
		if err != nil {
			continue
		}
		if fi.Mode().IsRegular() && fi.Size() == 0 {
			os.Remove(host)
		} else if fi.IsDir() {
			os.Remove(host) // only succeeds when empty
		}
	}
}

func hasPath(env []string) bool {
	for _, e := range env {
		if strings.HasPrefix(e, "PATH=") {
			return true
		}
	}
	return false
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
