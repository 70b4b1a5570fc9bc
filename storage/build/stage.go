package build

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerfile/shell"

	"github.com/berth-dev/berth/storage"
)

// state is a stage's image as the build goes: the last committed image (its layers) and the
// config changed since.
type state struct {
	image   string   // last committed image ID; "" for scratch before any layer
	chains  []string // that image's chain IDs
	cfg     storage.ImageConfig
	dirty   bool     // cfg differs from image's
	pending []string // metadata instructions since the last commit (history)
	args    map[string]string
	cmdSet  bool
	author  string
}

// predefinedArgs may be passed without a matching ARG (Docker's proxy variables).
var predefinedArgs = map[string]bool{
	"HTTP_PROXY": true, "http_proxy": true, "HTTPS_PROXY": true, "https_proxy": true,
	"FTP_PROXY": true, "ftp_proxy": true, "NO_PROXY": true, "no_proxy": true,
	"ALL_PROXY": true, "all_proxy": true,
}

// platformArgs are the automatic platform ARGs.
func platformArgs() map[string]string {
	arch := runtime.GOARCH
	variant := ""
	switch arch {
	case "arm":
		variant = "v7"
	case "arm64":
		variant = "v8"
	}
	plat := "linux/" + arch
	if variant != "" {
		plat += "/" + variant
	}
	m := map[string]string{}
	for _, p := range []string{"BUILD", "TARGET"} {
		m[p+"PLATFORM"], m[p+"OS"], m[p+"ARCH"], m[p+"VARIANT"] = plat, "linux", arch, variant
	}
	return m
}

func (b *builder) lex() *shell.Lex { return shell.NewLex(b.df.escape) }

func (b *builder) instrErr(ins instruction, err error) error {
	var be *Error
	if errors.As(err, &be) {
		return err
	}
	return &Error{File: b.df.name, Line: ins.line, Instruction: ins.orig, Err: err}
}

// metaArgs evaluates the ARGs before the first FROM.
func (b *builder) metaArgs() (map[string]string, error) {
	meta := platformArgs()
	for _, ins := range b.df.metaArgs {
		for _, a := range ins.args {
			name, def, hasDef := strings.Cut(a, "=")
			if hasDef {
				v, err := b.expand(def, envList(meta, nil))
				if err != nil {
					return nil, b.instrErr(ins, err)
				}
				def = v
			}
			if v, ok := b.opt.Args[name]; ok {
				b.usedArgs[name] = true
				meta[name] = v
			} else if hasDef {
				meta[name] = def
			} else if _, ok := meta[name]; !ok {
				continue
			}
		}
	}
	return meta, nil
}

// envList is args overridden by env (ENV beats ARG), as NAME=value strings.
func envList(args map[string]string, env []string) []string {
	inEnv := map[string]bool{}
	for _, e := range env {
		k, _, _ := strings.Cut(e, "=")
		inEnv[k] = true
	}
	keys := make([]string, 0, len(args))
	for k := range args {
		if !inEnv[k] {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	out := make([]string, 0, len(keys)+len(env))
	for _, k := range keys {
		out = append(out, k+"="+args[k])
	}
	return append(out, env...)
}

func (b *builder) expand(word string, env []string) (string, error) {
	res, err := b.lex().ProcessWordWithMatches(word, shell.EnvsFromSlice(env))
	if err != nil {
		return "", fmt.Errorf("%v: %w", err, ErrSyntax)
	}
	return res.Result, nil
}

// stageRef finds a stage by name or index among the stages before `before`.
func (b *builder) stageRef(name string, before int) int {
	n := strings.ToLower(name)
	for i := 0; i < before && i < len(b.df.stages); i++ {
		if b.df.stages[i].name != "" && b.df.stages[i].name == n {
			return i
		}
	}
	if i, err := strconv.Atoi(name); err == nil && i >= 0 && i < before {
		return i
	}
	return -1
}

// neededStages returns the stages the target depends on (FROM <stage>, COPY --from).
func (b *builder) neededStages(target int, meta map[string]string) (map[int]bool, error) {
	need := map[int]bool{}
	var visit func(i int) error
	visit = func(i int) error {
		if need[i] {
			return nil
		}
		need[i] = true
		s := b.df.stages[i]
		base, err := b.expand(s.base, envList(meta, nil))
		if err != nil {
			return b.instrErr(s.from, err)
		}
		if j := b.stageRef(base, i); j >= 0 {
			if err := visit(j); err != nil {
				return err
			}
		}
		for _, ins := range s.instrs {
			if ins.cmd != "copy" {
				continue
			}
			for _, f := range ins.flags {
				if v, ok := strings.CutPrefix(f, "--from="); ok {
					v, _ = b.expand(v, envList(meta, nil))
					if j := b.stageRef(v, i); j >= 0 {
						if err := visit(j); err != nil {
							return err
						}
					}
				}
			}
		}
		return nil
	}
	return need, visit(target)
}

func (b *builder) stageLabel(s *stage, n int) string {
	name := s.name
	if name == "" {
		name = fmt.Sprintf("stage-%d", s.index)
	}
	if len(b.df.stages) == 1 {
		return fmt.Sprintf("[%d/%d]", n, len(s.instrs)+1)
	}
	return fmt.Sprintf("[%s %d/%d]", name, n, len(s.instrs)+1)
}

func (b *builder) runStage(ctx context.Context, i int, meta map[string]string) (*state, error) {
	s := b.df.stages[i]
	b.out.printf("%s %s", b.stageLabel(s, 1), s.from.orig)
	st, err := b.from(ctx, s, meta)
	if err != nil {
		return nil, b.instrErr(s.from, err)
	}
	for n, ins := range s.instrs {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		label := b.stageLabel(s, n+2)
		b.out.printf("%s %s", label, ins.orig)
		if err := b.dispatch(ctx, st, ins, meta, label); err != nil {
			return nil, b.instrErr(ins, err)
		}
	}
	return st, nil
}

// from starts a stage's state from scratch, an earlier stage or an image.
func (b *builder) from(ctx context.Context, s *stage, meta map[string]string) (*state, error) {
	base, err := b.expand(s.base, envList(meta, nil))
	if err != nil {
		return nil, err
	}
	platform := b.opt.Platform
	for _, f := range s.from.flags {
		if v, ok := strings.CutPrefix(f, "--platform="); ok {
			if platform, err = b.expand(v, envList(meta, nil)); err != nil {
				return nil, err
			}
		}
	}
	if platform != "" {
		want, err := storage.ParsePlatform(platform)
		if err != nil {
			return nil, fmt.Errorf("%v: %w", err, ErrSyntax)
		}
		host, _ := storage.ParsePlatform("")
		if want.OS != host.OS || want.Architecture != host.Architecture {
			return nil, fmt.Errorf("platform %s: only the host platform %s/%s can be built: %w", platform, host.OS, host.Architecture, ErrUnsupported)
		}
	}
	st := &state{args: map[string]string{}}
	switch {
	case strings.EqualFold(base, "scratch"):
		st.cfg.Env = []string{DefaultPath}
		st.dirty = true
		return st, nil
	case b.stageRef(base, s.index) >= 0:
		prev := b.stageState[b.stageRef(base, s.index)]
		if prev == nil {
			return nil, fmt.Errorf("stage %s was not built: %w", base, ErrSyntax)
		}
		st.image, st.chains, st.cfg, st.dirty = prev.image, prev.chains, copyConfig(prev.cfg), prev.dirty
		st.pending = append([]string(nil), prev.pending...)
		return st, nil
	case base == "":
		return nil, fmt.Errorf("FROM names no image (an empty ARG?): %w", ErrSyntax)
	}
	img, err := b.resolveImage(ctx, base, platform)
	if err != nil {
		return nil, err
	}
	st.image, st.chains, st.cfg = img.ID, img.ChainIDs, copyConfig(img.Config)
	if len(st.cfg.Env) == 0 {
		st.cfg.Env = []string{DefaultPath}
		st.dirty = true
	}
	triggers := st.cfg.OnBuild
	if len(triggers) > 0 {
		st.cfg.OnBuild = nil
		st.dirty = true
		for _, t := range triggers {
			res, err := parser.Parse(strings.NewReader(t))
			if err != nil || len(res.AST.Children) != 1 {
				return nil, fmt.Errorf("ONBUILD trigger %q of %s: %v: %w", t, base, err, ErrSyntax)
			}
			ins := toInstruction(res.AST.Children[0])
			ins.line = s.from.line
			b.out.printf("  ONBUILD %s", t)
			if err := b.dispatch(ctx, st, ins, meta, "ONBUILD"); err != nil {
				return nil, fmt.Errorf("ONBUILD %s: %w", t, err)
			}
		}
	}
	return st, nil
}

// resolveImage finds (or pulls) a base image and makes sure its layers are unpacked: the build
// reads their files.
func (b *builder) resolveImage(ctx context.Context, ref, platform string) (storage.Image, error) {
	img, err := b.findImage(ctx, ref, platform)
	if err != nil {
		return img, err
	}
	if u, ok := b.store.(Unpacker); ok {
		if err := u.Unpack(ctx, img.ID); err != nil {
			return storage.Image{}, fmt.Errorf("image %s: %w", ref, err)
		}
	}
	return img, nil
}

func (b *builder) findImage(ctx context.Context, ref, platform string) (storage.Image, error) {
	if !b.opt.Pull {
		img, err := b.store.Resolve(ctx, ref)
		if err == nil {
			return img, nil
		}
		if !errors.Is(err, storage.ErrNotFound) {
			return storage.Image{}, err
		}
	}
	p, ok := b.store.(Puller)
	if !ok {
		return storage.Image{}, fmt.Errorf("image %s is not present locally and this store cannot pull: %w", ref, ErrBaseImage)
	}
	b.out.printf("pulling %s", ref)
	po := b.opt.PullOptions
	po.Platform = platform
	if po.Progress == nil {
		po.Progress = func(p storage.Progress) {
			switch p.Status {
			case "Pull complete", "Already exists":
				b.out.printf("  %s: %s", p.ID, p.Status)
			}
		}
	}
	img, err := p.Pull(ctx, ref, po)
	if err != nil {
		return storage.Image{}, fmt.Errorf("pull %s: %w: %w", ref, err, ErrBaseImage)
	}
	return img, nil
}

func copyConfig(c storage.ImageConfig) storage.ImageConfig {
	b, _ := json.Marshal(c)
	var out storage.ImageConfig
	json.Unmarshal(b, &out)
	return out
}

// env is the expansion environment: the stage's ARGs overridden by its ENV.
func (st *state) env() []string { return envList(st.args, st.cfg.Env) }

func (st *state) meta(orig string) {
	st.dirty = true
	st.pending = append(st.pending, orig)
}

func setEnv(env []string, k, v string) []string {
	out := make([]string, 0, len(env)+1)
	for _, e := range env {
		if n, _, _ := strings.Cut(e, "="); n != k {
			out = append(out, e)
		}
	}
	return append(out, k+"="+v)
}

func (b *builder) dispatch(ctx context.Context, st *state, ins instruction, meta map[string]string, label string) error {
	allowNoFlags := map[string]bool{"copy": true, "add": true, "run": true, "healthcheck": true, "from": true}
	if len(ins.flags) > 0 && !allowNoFlags[ins.cmd] {
		return fmt.Errorf("%s takes no flags (got %s): %w", strings.ToUpper(ins.cmd), strings.Join(ins.flags, " "), ErrSyntax)
	}
	need := func(n int) error {
		if len(ins.args) < n || (len(ins.args) == 1 && strings.TrimSpace(ins.args[0]) == "") {
			return fmt.Errorf("%s needs at least %d argument(s): %w", strings.ToUpper(ins.cmd), n, ErrSyntax)
		}
		return nil
	}
	env := st.env()
	switch ins.cmd {
	case "arg":
		if err := need(1); err != nil {
			return err
		}
		for _, a := range ins.args {
			name, def, hasDef := strings.Cut(a, "=")
			if hasDef {
				v, err := b.expand(def, st.env())
				if err != nil {
					return err
				}
				def = v
			}
			if v, ok := b.opt.Args[name]; ok {
				b.usedArgs[name] = true
				st.args[name] = v
			} else if hasDef {
				st.args[name] = def
			} else if v, ok := meta[name]; ok {
				st.args[name] = v
			}
		}
		return nil
	case "env", "label":
		if err := need(1); err != nil {
			return err
		}
		if len(ins.args)%3 != 0 {
			return fmt.Errorf("%s: want NAME=value pairs: %w", strings.ToUpper(ins.cmd), ErrSyntax)
		}
		labels := map[string]string{}
		for k, v := range st.cfg.Labels {
			labels[k] = v
		}
		for i := 0; i+2 < len(ins.args); i += 3 {
			k, err := b.expand(ins.args[i], env)
			if err != nil {
				return err
			}
			v, err := b.expand(ins.args[i+1], env)
			if err != nil {
				return err
			}
			if k == "" {
				return fmt.Errorf("%s: empty name: %w", strings.ToUpper(ins.cmd), ErrSyntax)
			}
			if ins.cmd == "env" {
				st.cfg.Env = setEnv(st.cfg.Env, k, v)
			} else {
				labels[k] = v
			}
		}
		if ins.cmd == "label" {
			st.cfg.Labels = labels
		}
		st.meta(ins.orig)
		return nil
	case "workdir":
		if err := need(1); err != nil {
			return err
		}
		p, err := b.expand(ins.args[0], env)
		if err != nil {
			return err
		}
		if !path.IsAbs(p) {
			wd := st.cfg.WorkingDir
			if wd == "" {
				wd = "/"
			}
			p = path.Join(wd, p)
		}
		st.cfg.WorkingDir = path.Clean(p)
		return b.mkWorkdir(ctx, st, ins, label)
	case "copy", "add":
		return b.copy(ctx, st, ins, label)
	case "run":
		return b.run(ctx, st, ins, label)
	case "expose":
		if err := need(1); err != nil {
			return err
		}
		for _, a := range ins.args {
			v, err := b.expand(a, env)
			if err != nil {
				return err
			}
			ports, err := exposePorts(v)
			if err != nil {
				return err
			}
			for _, p := range ports {
				if !contains(st.cfg.ExposedPorts, p) {
					st.cfg.ExposedPorts = append(st.cfg.ExposedPorts, p)
				}
			}
		}
		sort.Strings(st.cfg.ExposedPorts)
		st.meta(ins.orig)
		return nil
	case "volume":
		if err := need(1); err != nil {
			return err
		}
		for _, a := range ins.args {
			v, err := b.expand(a, env)
			if err != nil {
				return err
			}
			if strings.TrimSpace(v) == "" {
				return fmt.Errorf("VOLUME: empty path: %w", ErrSyntax)
			}
			if !contains(st.cfg.Volumes, v) {
				st.cfg.Volumes = append(st.cfg.Volumes, v)
			}
		}
		sort.Strings(st.cfg.Volumes)
		st.meta(ins.orig)
		return nil
	case "user", "stopsignal", "maintainer":
		if err := need(1); err != nil {
			return err
		}
		v, err := b.expand(ins.args[0], env)
		if err != nil {
			return err
		}
		switch ins.cmd {
		case "user":
			st.cfg.User = v
		case "stopsignal":
			st.cfg.StopSignal = v
		default:
			st.author = v
		}
		st.meta(ins.orig)
		return nil
	case "cmd", "entrypoint", "shell":
		args := ins.args
		if !ins.json {
			if ins.cmd == "shell" {
				return fmt.Errorf(`SHELL needs the JSON form, e.g. SHELL ["/bin/bash", "-c"]: %w`, ErrSyntax)
			}
			args = nil
			if len(ins.args) > 0 && ins.args[0] != "" {
				args = append(b.shell(st), ins.args[0])
			}
		}
		switch ins.cmd {
		case "cmd":
			st.cfg.Cmd, st.cmdSet = args, true
		case "entrypoint":
			st.cfg.Entrypoint = args
			if !st.cmdSet {
				st.cfg.Cmd = nil
			}
		default:
			if len(args) == 0 {
				return fmt.Errorf("SHELL needs at least one element: %w", ErrSyntax)
			}
			st.cfg.Shell = args
		}
		st.meta(ins.orig)
		return nil
	case "healthcheck":
		hc, err := parseHealthcheck(ins)
		if err != nil {
			return err
		}
		st.cfg.Healthcheck = hc
		st.meta(ins.orig)
		return nil
	case "onbuild":
		n := ins.node.Next
		if n == nil || len(n.Children) == 0 {
			return fmt.Errorf("ONBUILD needs an instruction: %w", ErrSyntax)
		}
		trig := n.Children[0]
		switch strings.ToUpper(trig.Value) {
		case "ONBUILD", "FROM", "MAINTAINER":
			return fmt.Errorf("ONBUILD %s is not allowed: %w", strings.ToUpper(trig.Value), ErrSyntax)
		}
		st.cfg.OnBuild = append(st.cfg.OnBuild, trig.Original)
		st.meta(ins.orig)
		return nil
	}
	return fmt.Errorf("unknown instruction %s: %w", strings.ToUpper(ins.cmd), ErrSyntax)
}

func (b *builder) shell(st *state) []string {
	if len(st.cfg.Shell) > 0 {
		return append([]string(nil), st.cfg.Shell...)
	}
	return []string{"/bin/sh", "-c"}
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

// exposePorts parses an EXPOSE word: "80", "80/udp", "8000-8002/tcp".
func exposePorts(v string) ([]string, error) {
	port, proto, _ := strings.Cut(v, "/")
	if proto == "" {
		proto = "tcp"
	}
	proto = strings.ToLower(proto)
	if proto != "tcp" && proto != "udp" && proto != "sctp" {
		return nil, fmt.Errorf("EXPOSE %s: protocol must be tcp, udp or sctp: %w", v, ErrSyntax)
	}
	lo, hi, isRange := strings.Cut(port, "-")
	a, err := strconv.Atoi(lo)
	if err != nil || a < 1 || a > 65535 {
		return nil, fmt.Errorf("EXPOSE %s: not a port: %w", v, ErrSyntax)
	}
	z := a
	if isRange {
		if z, err = strconv.Atoi(hi); err != nil || z < a || z > 65535 {
			return nil, fmt.Errorf("EXPOSE %s: not a port range: %w", v, ErrSyntax)
		}
	}
	var out []string
	for p := a; p <= z; p++ {
		out = append(out, fmt.Sprintf("%d/%s", p, proto))
	}
	return out, nil
}

func parseHealthcheck(ins instruction) (*storage.Healthcheck, error) {
	if len(ins.args) == 0 {
		return nil, fmt.Errorf("HEALTHCHECK needs CMD or NONE: %w", ErrSyntax)
	}
	kind := strings.ToUpper(ins.args[0])
	if kind == "NONE" {
		if len(ins.args) > 1 || len(ins.flags) > 0 {
			return nil, fmt.Errorf("HEALTHCHECK NONE takes no arguments: %w", ErrSyntax)
		}
		return &storage.Healthcheck{Test: []string{"NONE"}}, nil
	}
	if kind != "CMD" || len(ins.args) < 2 {
		return nil, fmt.Errorf("HEALTHCHECK needs CMD or NONE, e.g. HEALTHCHECK CMD curl -f http://localhost/: %w", ErrSyntax)
	}
	hc := &storage.Healthcheck{}
	if ins.json {
		hc.Test = append([]string{"CMD"}, ins.args[1:]...)
	} else {
		hc.Test = []string{"CMD-SHELL", ins.args[1]}
	}
	fl, err := ins.flagSet("interval", "timeout", "start-period", "start-interval", "retries")
	if err != nil {
		return nil, err
	}
	for k, v := range fl {
		var d time.Duration
		if k != "retries" {
			if d, err = time.ParseDuration(v); err != nil || d < 0 {
				return nil, fmt.Errorf("HEALTHCHECK --%s=%s: want a duration such as 30s: %w", k, v, ErrSyntax)
			}
		}
		switch k {
		case "interval":
			hc.Interval = d
		case "timeout":
			hc.Timeout = d
		case "start-period":
			hc.StartPeriod = d
		case "start-interval":
			hc.StartInterval = d
		case "retries":
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return nil, fmt.Errorf("HEALTHCHECK --retries=%s: want a number: %w", v, ErrSyntax)
			}
			hc.Retries = n
		}
	}
	return hc, nil
}

// copy runs COPY or ADD.
func (b *builder) copy(ctx context.Context, st *state, ins instruction, label string) error {
	var fl map[string]string
	var err error
	if ins.cmd == "copy" {
		fl, err = ins.flagSet("from", "chown", "chmod", "link")
	} else {
		fl, err = ins.flagSet("chown", "chmod", "link")
	}
	if err != nil {
		return err
	}
	if len(ins.args) < 2 {
		return fmt.Errorf("%s needs a source and a destination: %w", strings.ToUpper(ins.cmd), ErrSyntax)
	}
	env := st.env()
	op := copyOp{add: ins.cmd == "add"}
	for _, k := range []string{"from", "chown", "chmod"} {
		if v, ok := fl[k]; ok {
			if v, err = b.expand(v, env); err != nil {
				return err
			}
			fl[k] = v
		}
	}
	op.from, op.chown, op.chmod = fl["from"], fl["chown"], fl["chmod"]
	for _, h := range ins.docs {
		h, _ := ins.heredoc(h.Name)
		content := h.Content
		if h.Expand {
			lex := shell.NewLex('\\')
			lex.SkipProcessQuotes = true
			if content, _, err = lex.ProcessWord(content, shell.EnvsFromSlice(env)); err != nil {
				return fmt.Errorf("heredoc %s: %v: %w", h.Name, err, ErrSyntax)
			}
		}
		if op.inline == nil {
			op.inline = map[string]string{}
		}
		op.inline[h.Name] = content
	}
	for i, a := range ins.args {
		v, err := b.expand(a, env)
		if err != nil {
			return err
		}
		if i == len(ins.args)-1 {
			op.dest = v
		} else {
			op.srcs = append(op.srcs, v)
		}
	}
	if !path.IsAbs(op.dest) {
		wd := st.cfg.WorkingDir
		if wd == "" {
			wd = "/"
		}
		slash := strings.HasSuffix(op.dest, "/") || op.dest == "." || strings.HasSuffix(op.dest, "/.")
		op.dest = path.Join(wd, op.dest)
		if slash {
			op.dest += "/"
		}
	}
	src := sourceTree{t: b.bctx.t, ctx: b.bctx}
	fromID := ""
	if op.from != "" {
		cur := len(b.df.stages)
		for i, s := range b.df.stages {
			if s.from.line <= ins.line {
				cur = i + 1
			}
		}
		if j := b.stageRef(op.from, cur); j >= 0 {
			ps := b.stageState[j]
			if ps == nil {
				return fmt.Errorf("--from=%s: stage not built: %w", op.from, ErrSyntax)
			}
			src = sourceTree{t: layerTree(b.store, ps.chains)}
			fromID = "stage:" + ps.image
		} else {
			img, err := b.resolveImage(ctx, op.from, "")
			if err != nil {
				return fmt.Errorf("--from=%s: not a stage name and %w", op.from, err)
			}
			src = sourceTree{t: layerTree(b.store, img.ChainIDs)}
			fromID = "image:" + img.ID
		}
	}
	dst := layerTree(b.store, st.chains)
	plan, err := planCopy(op, src, dst)
	if err != nil {
		return err
	}
	sum, err := plan.hash(b.hasher)
	if err != nil {
		return err
	}
	desc, _ := json.Marshal(op)
	key := stepKey(st.image, st.cfg, ins.cmd, string(desc), fromID, sum)
	return b.commitPlan(ctx, st, key, ins.orig, plan, label)
}

// mkWorkdir adds a layer with the working directory when the image lacks it.
func (b *builder) mkWorkdir(ctx context.Context, st *state, ins instruction, label string) error {
	dst := layerTree(b.store, st.chains)
	rel, err := dst.resolve(st.cfg.WorkingDir, true)
	if err != nil {
		return err
	}
	if rel == "" {
		st.meta(ins.orig)
		return nil
	}
	if _, fi, err := dst.lookup(rel); err == nil {
		if !fi.IsDir() {
			return fmt.Errorf("WORKDIR %s exists and is not a directory: %w", st.cfg.WorkingDir, ErrSyntax)
		}
		st.meta(ins.orig)
		return nil
	}
	plan := newLayerPlan()
	if err := plan.ensureParents(dst, rel, 0, 0); err != nil {
		return err
	}
	if err := plan.ensureDir(dst, rel, 0, 0, 0o755, time.Unix(0, 0)); err != nil {
		return err
	}
	key := stepKey(st.image, st.cfg, "workdir", rel)
	return b.commitPlan(ctx, st, key, ins.orig, plan, label)
}

// commitPlan makes the plan a layer on top of st (or takes it from the cache).
func (b *builder) commitPlan(ctx context.Context, st *state, key, createdBy string, plan *layerPlan, label string) error {
	if b.useCache(ctx, st, key, label) {
		return nil
	}
	f, err := os.CreateTemp(b.opt.CacheDir, ".layer-*.tar")
	if err != nil {
		return fmt.Errorf("layer: %w", err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	bw := bufio.NewWriterSize(f, 1<<20)
	if err := plan.write(ctx, bw); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("layer: %w", err)
	}
	if _, err := f.Seek(0, 0); err != nil {
		return fmt.Errorf("layer: %w", err)
	}
	img, err := b.store.Create(ctx, storage.CreateOptions{
		Parent: st.image, Layer: f, Config: st.cfg, CreatedBy: b.createdBy(st, createdBy),
		Comment: "berth build", Author: st.author,
	})
	if err != nil {
		return fmt.Errorf("write layer: %w", err)
	}
	b.committed(st, key, img)
	return nil
}

func (b *builder) createdBy(st *state, ins string) string {
	return strings.Join(append(append([]string(nil), st.pending...), ins), "; ") + " # berth"
}

// useCache moves st to the cached image for key, if there is one.
func (b *builder) useCache(ctx context.Context, st *state, key, label string) bool {
	img, ok := b.lookup(ctx, key)
	if !ok {
		return false
	}
	st.image, st.chains, st.dirty, st.pending = img.ID, img.ChainIDs, false, nil
	b.out.printf("%s CACHED", label)
	return true
}

func (b *builder) committed(st *state, key string, img storage.Image) {
	b.cache.put(key, img.ID)
	st.image, st.chains, st.dirty, st.pending = img.ID, img.ChainIDs, false, nil
}
