package spec

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/dotenv"
	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
)

// Options selects and configures the compose files to load, like Compose's global flags.
type Options struct {
	Files       []string // -f; empty = discover (COMPOSE_FILE/BERTH_FILE honoured)
	ProjectName string
	ProjectDir  string // --project-directory
	WorkingDir  string // where discovery starts; "" = os.Getwd()
	EnvFiles    []string
	Profiles    []string
	Environ     []string // os.Environ() style; nil = os.Environ()
	// Validated, when set, lets a load skip schema validation of inputs that passed it
	// before (see ValidationCache).
	Validated ValidationCache
	// Loaded, when set, lets Load return the project loaded before from the same inputs
	// without running compose-go (see LoadCache).
	Loaded LoadCache
}

// defaultFileNames are the compose file names looked for, in order of preference, in the
// working directory and then in each parent directory (as Compose does).
var defaultFileNames = []string{"compose.yaml", "compose.yml", "docker-compose.yml", "docker-compose.yaml"}

// defaultOverrideFileNames are merged after the discovered file when present next to it.
var defaultOverrideFileNames = []string{"compose.override.yml", "compose.override.yaml", "docker-compose.override.yml", "docker-compose.override.yaml"}

// berthEnv maps BERTH_-prefixed variables to the Compose variables they stand for. A BERTH_
// variable wins over its COMPOSE_ counterpart.
var berthEnv = [][2]string{
	{"BERTH_FILE", "COMPOSE_FILE"},
	{"BERTH_PROJECT_NAME", "COMPOSE_PROJECT_NAME"},
	{"BERTH_PROFILES", "COMPOSE_PROFILES"},
	{"BERTH_PATH_SEPARATOR", "COMPOSE_PATH_SEPARATOR"},
	{"BERTH_ENV_FILES", "COMPOSE_ENV_FILES"},
	{"BERTH_DISABLE_ENV_FILE", "COMPOSE_DISABLE_ENV_FILE"},
}

// resolved is what Options turn into once the environment, .env files and discovery are done.
type resolved struct {
	env      types.Mapping
	files    []string // absolute, or "-"
	dir      string   // project (working) directory, absolute
	name     string   // explicit project name or ""
	profiles []string
}

// Load reads, interpolates, merges and validates the project selected by opt and converts it
// into berth's model. Every user error is a *Error (errors.Is ErrInvalid, or ErrNotFound when
// no compose file exists).
func Load(ctx context.Context, opt Options) (*Project, error) {
	r, err := resolveOptions(opt)
	if err != nil {
		return nil, err
	}
	if err := precheckFiles(r.files); err != nil {
		return nil, err
	}
	// deps, when not nil, notes the files the load reads besides the compose files.
	load := func(deps *depRecorder) (*Project, error) {
		cp, err := loadResolved(ctx, opt, r, false, deps)
		if err != nil {
			return nil, err
		}
		return convertProject(cp)
	}
	if opt.Loaded != nil {
		return loadCached(opt, r, load)
	}
	loadLog.RLock()
	defer loadLog.RUnlock()
	return load(nil)
}

// loadCompose runs compose-go and berth's own checks. With discardEnvFiles, env_file entries
// are merged into environment and dropped, as `docker compose config` prints them.
func loadCompose(ctx context.Context, opt Options, discardEnvFiles bool) (*types.Project, error) {
	r, err := resolveOptions(opt)
	if err != nil {
		return nil, err
	}
	if err := precheckFiles(r.files); err != nil {
		return nil, err
	}
	loadLog.RLock()
	defer loadLog.RUnlock()
	return loadResolved(ctx, opt, r, discardEnvFiles, nil)
}

// loadResolved is loadCompose once the options are resolved. When deps is not nil, it notes
// the files read besides the compose files (env_file, label_file) before they are read.
func loadResolved(ctx context.Context, opt Options, r *resolved, discardEnvFiles bool, deps *depRecorder) (*types.Project, error) {
	fns := []cli.ProjectOptionsFn{
		cli.WithWorkingDirectory(r.dir),
		cli.WithEnv(r.env.Values()),
		cli.WithProfiles(r.profiles),
		cli.WithoutEnvironmentResolution,
		// label_file is resolved below, after the files read are noted for the load cache.
		cli.WithoutLabelsResolution,
		// compose-go's consistency check has a cycle search that is cubic (or worse) in the
		// number of services; checkConsistency does the same checks in linear time.
		cli.WithConsistency(false),
	}
	if r.name != "" {
		if loader.NormalizeProjectName(r.name) != r.name {
			return nil, projectNameError(r.name)
		}
		fns = append(fns, cli.WithName(r.name))
	}
	var key string
	if opt.Validated != nil {
		if key = validationKey(r); key != "" && opt.Validated.Validated(key) {
			fns = append(fns, cli.WithLoadOptions(loader.WithSkipValidation))
			key = ""
		}
	}
	po, err := cli.NewProjectOptions(r.files, fns...)
	if err != nil {
		return nil, translate(err, r.files)
	}
	cp, err := po.LoadProject(ctx)
	if err != nil {
		return nil, translate(err, r.files)
	}
	if key != "" {
		opt.Validated.MarkValidated(key)
	}
	if deps != nil {
		deps.record(cp)
	}
	// As compose-go's loader does last when it resolves labels itself.
	if cp, err = cp.WithServicesLabelsResolved(false); err != nil {
		return nil, translate(err, r.files)
	}
	if err := checkConsistency(cp, r.files); err != nil {
		return nil, err
	}
	if err := checkEnvFiles(cp, r.files); err != nil {
		return nil, err
	}
	cp, err = cp.WithServicesEnvironmentResolved(discardEnvFiles)
	if err != nil {
		return nil, translate(err, r.files)
	}
	resolveDisabledEnvironment(cp)
	// Like Compose (without --all-resources): resources no enabled service uses are not part
	// of the project.
	cp = cp.WithoutUnnecessaryResources()
	if err := validateProject(cp, r.files); err != nil {
		return nil, err
	}
	return cp, nil
}

// resolveOptions computes the environment, compose files, project directory, project name and
// profiles the way `docker compose` does: OS environment first (it always wins), then .env
// (or --env-file), then COMPOSE_FILE or discovery, then .env next to the project directory.
func resolveOptions(opt Options) (*resolved, error) {
	environ := opt.Environ
	if environ == nil {
		environ = os.Environ()
	}
	env := types.Mapping{}
	for _, kv := range environ {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			continue
		}
		env[k] = v
	}
	applyBerthEnv(env, env)

	cwd := opt.WorkingDir
	if cwd == "" {
		wd, err := os.Getwd()
		if err != nil {
			return nil, fmt.Errorf("spec: working directory: %w", err)
		}
		cwd = wd
	}
	cwd = absFrom("", cwd)
	if _, ok := env["PWD"]; !ok {
		env["PWD"] = cwd
	}

	r := &resolved{env: env}
	var projectDir string
	if opt.ProjectDir != "" {
		projectDir = absFrom(cwd, opt.ProjectDir)
		if fi, err := os.Stat(projectDir); err != nil || !fi.IsDir() {
			return nil, &Error{
				Path: "--project-directory",
				Msg:  fmt.Sprintf("%s is not a directory", projectDir),
				Hint: "pass an existing directory to --project-directory",
				Err:  ErrInvalid,
			}
		}
	}

	envFiles := opt.EnvFiles
	if len(envFiles) == 0 && env["COMPOSE_ENV_FILES"] != "" {
		for _, f := range strings.Split(env["COMPOSE_ENV_FILES"], ",") {
			if f = strings.TrimSpace(f); f != "" {
				envFiles = append(envFiles, f)
			}
		}
	}
	for i, f := range envFiles {
		envFiles[i] = absFrom(cwd, f)
	}
	explicitEnv := len(envFiles) > 0
	disableDotEnv, _ := strconv.ParseBool(env["COMPOSE_DISABLE_ENV_FILE"])

	files := slices.Clone(opt.Files)
	// First .env: where the project directory is already known (--project-directory, or the
	// first -f file), else the working directory. It may set COMPOSE_FILE.
	dotEnvDir := projectDir
	if dotEnvDir == "" {
		dotEnvDir = firstFileDir(cwd, files)
	}
	if dotEnvDir == "" {
		dotEnvDir = cwd
	}
	loaded := map[string]bool{}
	if explicitEnv {
		if err := mergeEnvFiles(env, envFiles, true, loaded); err != nil {
			return nil, err
		}
	} else if !disableDotEnv {
		if err := mergeEnvFiles(env, []string{filepath.Join(dotEnvDir, ".env")}, false, loaded); err != nil {
			return nil, err
		}
	}

	if len(files) == 0 {
		if f := env["COMPOSE_FILE"]; f != "" {
			sep := env["COMPOSE_PATH_SEPARATOR"]
			if sep == "" {
				sep = string(os.PathListSeparator)
			}
			for _, p := range strings.Split(f, sep) {
				if p != "" {
					files = append(files, p)
				}
			}
		}
	}
	if len(files) == 0 {
		start := projectDir
		if start == "" {
			start = cwd
		}
		found, err := discover(start)
		if err != nil {
			return nil, err
		}
		files = found
	}
	for i, f := range files {
		if f != "-" {
			files[i] = absFrom(cwd, f)
		}
	}
	r.files = files

	r.dir = projectDir
	if r.dir == "" {
		r.dir = firstFileDir(cwd, files)
	}
	if r.dir == "" {
		r.dir = cwd
	}
	// Second .env: next to the project directory, once it is known.
	if !explicitEnv && !disableDotEnv {
		if err := mergeEnvFiles(env, []string{filepath.Join(r.dir, ".env")}, false, loaded); err != nil {
			return nil, err
		}
	}

	r.name = opt.ProjectName
	if len(opt.Profiles) > 0 {
		r.profiles = opt.Profiles
	} else {
		for _, p := range strings.Split(env["COMPOSE_PROFILES"], ",") {
			if p = strings.TrimSpace(p); p != "" {
				r.profiles = append(r.profiles, p)
			}
		}
	}
	return r, nil
}

// applyBerthEnv copies each BERTH_ variable present in from over its COMPOSE_ counterpart in env.
func applyBerthEnv(env, from types.Mapping) {
	for _, m := range berthEnv {
		if v, ok := from[m[0]]; ok {
			env[m[1]] = v
		}
	}
}

// mergeEnvFiles reads env files into env without overriding what is already set (the OS
// environment always wins). Missing files are an error only when required.
func mergeEnvFiles(env types.Mapping, files []string, required bool, loaded map[string]bool) error {
	var todo []string
	for _, f := range files {
		if loaded[f] {
			continue
		}
		fi, err := os.Stat(f)
		switch {
		case err == nil && fi.IsDir():
			if required {
				return &Error{File: f, Path: "--env-file", Msg: "is a directory, not an env file",
					Hint: "pass a file of KEY=VALUE lines to --env-file", Err: ErrInvalid}
			}
			continue
		case errors.Is(err, fs.ErrNotExist):
			if required {
				return &Error{File: f, Path: "--env-file", Msg: "env file does not exist",
					Hint: "create it, or fix the path given to --env-file (relative paths start from the working directory)",
					Err:  errors.Join(ErrInvalid, err)}
			}
			continue
		case err != nil:
			return &Error{File: f, Msg: err.Error(), Err: errors.Join(ErrInvalid, err)}
		}
		loaded[f] = true
		todo = append(todo, f)
	}
	if len(todo) == 0 {
		return nil
	}
	vars, err := dotenv.GetEnvFromFile(env, todo)
	if err != nil {
		return &Error{File: todo[0], Msg: "cannot read env file: " + err.Error(),
			Hint: "each line must be KEY=VALUE; quote values with spaces or special characters",
			Err:  errors.Join(ErrInvalid, err)}
	}
	env.Merge(vars)
	applyBerthEnv(env, env)
	return nil
}

// discover looks for a compose file in dir and then in each parent, as Compose does.
func discover(dir string) ([]string, error) {
	var looked []string
	for {
		looked = append(looked, dir)
		for _, n := range defaultFileNames {
			f := filepath.Join(dir, n)
			if fi, err := os.Stat(f); err == nil && !fi.IsDir() {
				files := []string{f}
				for _, o := range defaultOverrideFileNames {
					of := filepath.Join(dir, o)
					if fi, err := os.Stat(of); err == nil && !fi.IsDir() {
						files = append(files, of)
						break
					}
				}
				return files, nil
			}
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			break
		}
		dir = parent
	}
	return nil, &Error{
		Msg: fmt.Sprintf("no compose file found: looked for %s in %s and every parent directory up to /",
			strings.Join(defaultFileNames, ", "), looked[0]),
		Hint: "create compose.yaml in the project directory, or pass it with -f FILE (or set COMPOSE_FILE)",
		Err:  ErrNotFound,
	}
}

// precheckFiles reports -f / COMPOSE_FILE entries that do not exist before compose-go does.
func precheckFiles(files []string) error {
	for _, f := range files {
		if f == "-" {
			continue
		}
		fi, err := os.Stat(f)
		if errors.Is(err, fs.ErrNotExist) {
			return &Error{File: f, Msg: "compose file does not exist",
				Hint: "check the path given to -f or COMPOSE_FILE (relative paths start from the working directory)",
				Err:  errors.Join(ErrNotFound, err)}
		}
		if err != nil {
			return &Error{File: f, Msg: err.Error(), Err: errors.Join(ErrInvalid, err)}
		}
		if fi.IsDir() {
			return &Error{File: f, Msg: "is a directory, not a compose file",
				Hint: "pass the compose file itself, e.g. -f " + filepath.Join(f, "compose.yaml"), Err: ErrInvalid}
		}
	}
	return nil
}

func projectNameError(name string) error {
	return &Error{
		Path: "name",
		Msg:  fmt.Sprintf("%q is not a valid project name", name),
		Hint: fmt.Sprintf("use only lowercase letters, digits, '-' and '_', starting with a letter or digit, e.g. %q", suggestProjectName(name)),
		Err:  ErrInvalid,
	}
}

func suggestProjectName(name string) string {
	s := loader.NormalizeProjectName(name)
	if s == "" {
		return "myproject"
	}
	return s
}

func absFrom(base, p string) string {
	if filepath.IsAbs(p) {
		return filepath.Clean(p)
	}
	if base == "" {
		if a, err := filepath.Abs(p); err == nil {
			return a
		}
		return p
	}
	return filepath.Join(base, p)
}

func firstFileDir(cwd string, files []string) string {
	for _, f := range files {
		if f != "-" {
			return filepath.Dir(absFrom(cwd, f))
		}
	}
	return ""
}

// resolveDisabledEnvironment resolves env_file and environment of services disabled by
// profiles too, so that a caller enabling one later sees the same environment Compose would.
// Unlike for enabled services, a missing env_file is not an error here: it is reported if
// and when the service is enabled.
func resolveDisabledEnvironment(cp *types.Project) {
	for name, s := range cp.DisabledServices {
		tmp := types.Project{Environment: cp.Environment, Services: types.Services{name: s}}
		if res, err := tmp.WithServicesEnvironmentResolved(false); err == nil {
			cp.DisabledServices[name] = res.Services[name]
		}
	}
}
