package spec

import (
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/compose-spec/compose-go/v2/template"
	"github.com/compose-spec/compose-go/v2/types"
)

// compose-go reports most problems as plain strings. These patterns match the messages of
// compose-go v2.16.2 so that they can be turned into *Error with a key path and a hint. They
// are compiled on first use: berth re-executes itself for every container, and package
// initialisation is paid on each start.
type patterns struct {
	composeFile   *regexp.Regexp
	validating    *regexp.Regexp
	additional    *regexp.Regexp
	falseSchema   *regexp.Regexp
	mustBe        *regexp.Regexp
	schemaGeneric *regexp.Regexp
	parse         *regexp.Regexp
	yamlPos       *regexp.Regexp
	dupKey        *regexp.Regexp
	interpPath    *regexp.Regexp
	badTemplate   *regexp.Regexp
	decoding      *regexp.Regexp
	dependsOn     *regexp.Regexp
	noImage       *regexp.Regexp
	containerName *regexp.Regexp
	envFile       *regexp.Regexp
	undefinedRef  *regexp.Regexp
	networkMode   *regexp.Regexp
	port          *regexp.Regexp
	extendsCycle  *regexp.Regexp
	includeCycle  *regexp.Regexp
	projectName   *regexp.Regexp
	distinct      *regexp.Regexp
	openMissing   *regexp.Regexp
	extendsMiss   *regexp.Regexp
}

var rx = sync.OnceValue(func() *patterns {
	return &patterns{
		composeFile:   regexp.MustCompile(`(?s)^compose file "(.+?)"(?: [^:]*)? is invalid: (.*)$`),
		validating:    regexp.MustCompile(`(?s)^validating (.+?): (.*)$`),
		additional:    regexp.MustCompile(`^(\S*)\s*additional propert(?:y|ies) (.+) not allowed$`),
		falseSchema:   regexp.MustCompile(`^(\S+) false schema$`),
		mustBe:        regexp.MustCompile(`^(\S+) must be an? (.+)$`),
		schemaGeneric: regexp.MustCompile(`(?s)^(\S+) (.+)$`),
		parse:         regexp.MustCompile(`(?s)^failed to parse (.+?): (yaml: .*)$`),
		yamlPos:       regexp.MustCompile(`line \d+(?:, column \d+)?: `),
		dupKey:        regexp.MustCompile(`line (\d+): mapping key "(.+)" already defined at line (\d+)`),
		interpPath:    regexp.MustCompile(`error while interpolating (\S+): (.*)`),
		badTemplate:   regexp.MustCompile(`(?s)invalid interpolation format for (\S+?)\.\n.*\n(.*)$`),
		decoding:      regexp.MustCompile(`'([^']+)' (.+)`),
		dependsOn:     regexp.MustCompile(`service "(.+)" depends on undefined service "(.+)"`),
		noImage:       regexp.MustCompile(`service "(.+)" has neither an image nor a build context specified`),
		containerName: regexp.MustCompile(`services\.(scale|deploy\.replicas): can't set container_name and (.+) as container name must be unique`),
		envFile:       regexp.MustCompile(`env file (.+) not found`),
		undefinedRef:  regexp.MustCompile(`service "(.+)" refers to undefined (network|volume|config|secret|build secret) ([^\s:]+)`),
		networkMode:   regexp.MustCompile(`service "(.+)" not found for network_mode 'service:(.+)'`),
		port:          regexp.MustCompile(`^(invalid hostPort|invalid containerPort|invalid proto|invalid IP address)`),
		extendsCycle:  regexp.MustCompile(`(?s)^Circular reference:\n\s+(\S+) in (\S+)`),
		includeCycle:  regexp.MustCompile(`(?s)^include cycle detected`),
		projectName:   regexp.MustCompile(`invalid project name "(.*)"`),
		distinct:      regexp.MustCompile(`^services\.(\S+?): can't set distinct values on '(.+)' and '(.+)'`),
		openMissing:   regexp.MustCompile(`open (\S+): no such file or directory`),
		extendsMiss:   regexp.MustCompile(`cannot extend service "(.+)" in (\S+): service "?(.+?)"? not found`),
	}
})

// translate turns an error from compose-go into a *Error naming the file, key path and fix.
func translate(err error, files []string) error {
	if err == nil {
		return nil
	}
	var se *Error
	if errors.As(err, &se) {
		return se
	}
	docs := parseDocs(files)
	msg := err.Error()

	// Unwrap compose-go's "compose file %q is invalid: ..." decoration.
	if m := rx().composeFile.FindStringSubmatch(msg); m != nil {
		return &Error{File: m[1], Msg: m[2], Err: errors.Join(ErrInvalid, err)}
	}

	if m := rx().parse.FindStringSubmatch(msg); m != nil {
		return yamlError(err, m[1], m[2])
	}
	if strings.HasPrefix(msg, "yaml: ") {
		// compose-go's name pre-scan does not say which file failed: find it.
		file := ""
		for _, d := range docs {
			if d.err != nil {
				file = d.file
				break
			}
		}
		return yamlError(err, file, msg)
	}

	if m := rx().validating.FindStringSubmatch(msg); m != nil {
		return schemaError(err, m[1], m[2], docs)
	}

	var missing *template.MissingRequiredError
	if errors.As(err, &missing) {
		path := ""
		if m := rx().interpPath.FindStringSubmatch(msg); m != nil {
			path = m[1]
		}
		e := invalid(err, "", path, fmt.Sprintf("required variable %s is not set", missing.Variable),
			fmt.Sprintf("set %s in the environment or in the .env file (e.g. %s=value)", missing.Variable, missing.Variable))
		if missing.Reason != "" {
			e.Msg += ": " + missing.Reason
		}
		return locate(e, docs, path)
	}
	if m := rx().badTemplate.FindStringSubmatch(msg); m != nil {
		e := invalid(err, "", m[1], fmt.Sprintf("invalid variable reference %q", m[2]),
			"write ${NAME}, ${NAME:-default} or ${NAME:?error}; write $$ for a literal $")
		return locate(e, docs, m[1])
	}
	if m := rx().interpPath.FindStringSubmatch(msg); m != nil {
		path, detail := m[1], m[2]
		detail = strings.TrimPrefix(detail, "failed to cast to expected type: ")
		e := invalid(err, "", path, "invalid value: "+cleanDetail(detail), typeHintFor(path, detail))
		return locate(e, docs, path)
	}

	if m := rx().openMissing.FindStringSubmatch(msg); m != nil {
		missing := m[1]
		e := invalid(err, "", "", fmt.Sprintf("file %s does not exist", missing),
			"fix the path: it is relative to the directory of the compose file that names it")
		file, path, n := findScalar(docs, func(file, v string) bool {
			return v == missing || absFrom(filepath.Dir(file), v) == missing
		})
		if n != nil {
			e.File, e.Path, e.Line, e.Column = file, path, n.Line, n.Column
		} else if len(docs) == 1 {
			e.File = docs[0].file
		}
		return e
	}
	if m := rx().mustBe.FindStringSubmatch(msg); m != nil {
		return schemaError(err, "", msg, docs)
	}
	if strings.HasPrefix(msg, "decoding failed") {
		if m := rx().decoding.FindStringSubmatch(msg); m != nil {
			path := decodePath(m[1])
			e := invalid(err, "", path, "invalid value: "+cleanDetail(m[2]), typeHintFor(path, m[2]))
			return locate(e, docs, path)
		}
	}

	if m := rx().dependsOn.FindStringSubmatch(msg); m != nil {
		path := "services." + m[1] + ".depends_on"
		e := invalid(err, "", path, fmt.Sprintf("depends on undefined service %q", m[2]), serviceHint(m[2], docs))
		return locateDependsOn(e, docs, m[1], m[2])
	}
	if m := rx().noImage.FindStringSubmatch(msg); m != nil {
		path := "services." + m[1]
		e := invalid(err, "", path, "service has neither an image nor a build section",
			"add image: NAME (e.g. image: nginx:1.27) or build: DIRECTORY (e.g. build: .)")
		return locate(e, docs, path)
	}
	if m := rx().containerName.FindStringSubmatch(msg); m != nil {
		path := "services." + m[2] + ".container_name"
		e := invalid(err, "", path, fmt.Sprintf("container_name cannot be used with more than one replica (%s)", m[1]),
			"remove container_name (berth names replicas <project>-"+m[2]+"-N), or set "+m[1]+" to 1")
		return locate(e, docs, path)
	}
	if m := rx().envFile.FindStringSubmatch(msg); m != nil {
		return invalid(err, "", "env_file", fmt.Sprintf("env file %s does not exist", m[1]),
			"create the file, fix the path (relative to the project directory), or mark it optional with required: false")
	}
	if m := rx().undefinedRef.FindStringSubmatch(msg); m != nil {
		kind := m[2]
		key := map[string]string{"network": "networks", "volume": "volumes", "config": "configs", "secret": "secrets", "build secret": "secrets"}[kind]
		path := "services." + m[1] + "." + key
		e := invalid(err, "", path, fmt.Sprintf("%s %q is not declared", kind, m[3]),
			fmt.Sprintf("declare it at the top level:\n%s:\n  %s: {}", key, m[3]))
		return locate(e, docs, path)
	}
	if m := rx().networkMode.FindStringSubmatch(msg); m != nil {
		return invalid(err, "", "network_mode", fmt.Sprintf("network_mode refers to undefined service %q", m[2]), serviceHint(m[2], docs))
	}
	if rx().port.MatchString(msg) {
		return portError(err, docs)
	}
	if m := rx().extendsCycle.FindStringSubmatch(msg); m != nil {
		path := "services." + m[1] + ".extends"
		var chain []string
		for _, l := range strings.Split(msg, "\n")[1:] {
			f := strings.Fields(strings.TrimPrefix(strings.TrimSpace(l), "extends "))
			if len(f) > 0 {
				chain = append(chain, f[0])
			}
		}
		e := invalid(err, m[2], path, "extends forms a cycle: "+strings.Join(chain, " -> "),
			"break the cycle: a service cannot extend itself, directly or through others")
		return locate(e, docs, path)
	}
	if rx().includeCycle.MatchString(msg) {
		return invalid(err, "", "include", msg, "remove the include that points back to a file already being included")
	}
	if m := rx().extendsMiss.FindStringSubmatch(msg); m != nil {
		e := invalid(err, m[2], "services."+m[1]+".extends", fmt.Sprintf("extended service %q does not exist", m[3]),
			"check that extends.service (and extends.file) name an existing service")
		if c := closest(m[3], serviceNames(docs)); c != "" && c != m[3] {
			e.Hint = fmt.Sprintf("did you mean %q?", c)
		}
		return locate(e, docs, e.Path)
	}
	if m := rx().projectName.FindStringSubmatch(msg); m != nil {
		return projectNameError(m[1])
	}
	if msg == "project name must not be empty" {
		return &Error{Path: "name", Msg: "the project name is empty",
			Hint: "set name: in the compose file, pass -p NAME, or set COMPOSE_PROJECT_NAME", Err: ErrInvalid}
	}
	if msg == "empty compose file" {
		f := ""
		if len(files) > 0 {
			f = files[0]
		}
		return &Error{File: f, Msg: "the compose file is empty", Hint: "declare at least one service under services:", Err: ErrInvalid}
	}
	if m := rx().distinct.FindStringSubmatch(msg); m != nil {
		path := "services." + m[1]
		e := invalid(err, "", path, fmt.Sprintf("%s and %s are both set, to different values", m[2], m[3]),
			fmt.Sprintf("keep only one of %s and %s", m[2], m[3]))
		return locate(e, docs, path)
	}
	if strings.Contains(msg, "healthcheck.test must start") {
		return invalid(err, "", "healthcheck.test", "healthcheck.test must start with CMD, CMD-SHELL or NONE",
			`write test: ["CMD", "curl", "-f", "http://localhost"] or test: curl -f http://localhost`)
	}
	var e *Error = invalid(err, "", "", msg, "")
	if len(docs) == 1 {
		e.File = docs[0].file
	}
	return e
}

func yamlError(err error, file, detail string) *Error {
	e := invalid(err, file, "", "invalid YAML: "+strings.TrimPrefix(detail, "yaml: "),
		"check the indentation (spaces, never tabs) and that every key is followed by ':'")
	// The most precise position is the last one in the message.
	all := regexp.MustCompile(`line (\d+)(?:, column (\d+))?`).FindAllStringSubmatch(detail, -1)
	if len(all) > 0 {
		last := all[len(all)-1]
		e.Line, _ = strconv.Atoi(last[1])
		e.Column, _ = strconv.Atoi(last[2])
	}
	if locs := rx().yamlPos.FindAllStringIndex(detail, -1); len(locs) > 0 {
		e.Msg = "invalid YAML: " + strings.TrimSpace(detail[locs[len(locs)-1][1]:])
	}
	if m := rx().dupKey.FindStringSubmatch(detail); m != nil {
		e.Line, _ = strconv.Atoi(m[1])
		e.Column = 0
		e.Msg = fmt.Sprintf("invalid YAML: key %q appears twice in the same mapping (first at line %s)", m[2], m[3])
		e.Hint = "remove one of them: within one file a key may appear only once (use another -f file to override)"
	}
	if strings.Contains(detail, "found character that cannot start any token") {
		e.Hint = "YAML does not allow tabs for indentation: indent with spaces"
	}
	return e
}

func schemaError(err error, file, detail string, docs []yamlDoc) *Error {
	detail = strings.TrimSpace(detail)
	if m := rx().additional.FindStringSubmatch(detail); m != nil {
		parent := m[1]
		keys := strings.Split(m[2], ", ")
		key := strings.Trim(keys[0], "'\"")
		return unknownKey(err, file, parent, key, docs)
	}
	if m := rx().falseSchema.FindStringSubmatch(detail); m != nil {
		segs := splitPath(m[1])
		key := segs[len(segs)-1]
		return unknownKey(err, file, strings.Join(segs[:len(segs)-1], "."), key, docs)
	}
	if m := rx().mustBe.FindStringSubmatch(detail); m != nil {
		want := strings.ReplaceAll(m[2], "array", "list")
		e := &Error{File: file, Path: m[1], Msg: "must be a " + want, Hint: typeHintFor(m[1], want), Err: errors.Join(ErrInvalid, err)}
		return locate(e, docs, m[1])
	}
	if m := rx().schemaGeneric.FindStringSubmatch(detail); m != nil {
		e := &Error{File: file, Path: m[1], Msg: m[2], Err: errors.Join(ErrInvalid, err)}
		return locate(e, docs, m[1])
	}
	return &Error{File: file, Msg: detail, Err: errors.Join(ErrInvalid, err)}
}

func unknownKey(err error, file, parent, key string, docs []yamlDoc) *Error {
	path := key
	if parent != "" {
		path = parent + "." + key
	}
	switch parent {
	case "services", "networks", "volumes", "secrets", "configs", "models":
		// The schema allows any name matching a pattern here: the name itself is wrong.
		kind := strings.TrimSuffix(parent, "s")
		e := &Error{File: file, Path: path, Msg: fmt.Sprintf("%q is not a valid %s name", key, kind),
			Hint: fmt.Sprintf("use only letters, digits, '.', '_' and '-', e.g. %q", nameSuggestion(key)),
			Err:  errors.Join(ErrInvalid, err)}
		return locate(e, docs, path)
	}
	e := &Error{File: file, Path: path, Msg: fmt.Sprintf("unknown key %q", key), Err: errors.Join(ErrInvalid, err)}
	valid := validKeys(splitPath(parent))
	if c := closest(key, valid); c != "" {
		e.Hint = fmt.Sprintf("did you mean %q? (write %s: instead of %s:)", c, c, key)
	} else {
		e.Hint = "remove it, or prefix it with x- to keep it as an extension"
		if len(valid) > 0 && len(valid) <= 12 {
			e.Hint += "; valid keys here: " + strings.Join(valid, ", ")
		}
	}
	return locate(e, docs, path)
}

// typeHintFor suggests what to write for a value at path, given what was expected.
func typeHintFor(path, detail string) string {
	last := path
	if i := strings.LastIndex(path, "."); i >= 0 {
		last = path[i+1:]
	}
	switch last {
	case "mem_limit", "mem_reservation", "memswap_limit", "shm_size", "memory", "size", "tmpfs_size":
		return `write a size in bytes or with a unit: b, k, m, g (e.g. "512m" or "1g")`
	case "cpus":
		return `write a number of CPUs, e.g. cpus: 0.5 or cpus: "2"`
	case "ports":
		return "write a list of HOST:CONTAINER mappings, e.g.\nports:\n  - \"8080:80\""
	case "privileged", "read_only", "tty", "stdin_open", "init", "internal", "attachable", "external":
		return "write true or false"
	case "environment", "labels", "args":
		return "write a mapping (KEY: value) or a list of \"KEY=value\" strings"
	case "command", "entrypoint":
		return `write a string (command: npm start) or a list (command: ["npm", "start"])`
	case "target", "published":
		return "write a port number (1-65535), e.g. 8080"
	case "scale", "replicas", "pids_limit", "cpu_shares", "retries":
		return "write a whole number, e.g. 2"
	case "interval", "timeout", "start_period", "start_interval", "stop_grace_period":
		return `write a duration, e.g. "30s", "1m30s"`
	}
	switch {
	case strings.Contains(detail, "list"), strings.Contains(detail, "array"):
		return "write a YAML list, one \"- item\" per line"
	case strings.Contains(detail, "mapping"), strings.Contains(detail, "object"):
		return "write a YAML mapping (key: value lines, indented under the key)"
	case strings.Contains(detail, "boolean"):
		return "write true or false"
	case strings.Contains(detail, "number"), strings.Contains(detail, "integer"):
		return "write a number without quotes"
	case strings.Contains(detail, "string"):
		return "write a single string (quote it if it contains ':' or starts with a special character)"
	}
	return ""
}

func cleanDetail(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.Index(s, `strconv.ParseFloat: parsing `); i >= 0 {
		return strings.TrimSuffix(s[i+len(`strconv.ParseFloat: parsing `):], ": invalid syntax") + " is not a number"
	}
	if i := strings.Index(s, `strconv.Atoi: parsing `); i >= 0 {
		return strings.TrimSuffix(s[i+len(`strconv.Atoi: parsing `):], ": invalid syntax") + " is not a whole number"
	}
	if i := strings.Index(s, `strconv.ParseInt: parsing `); i >= 0 {
		return strings.TrimSuffix(s[i+len(`strconv.ParseInt: parsing `):], ": invalid syntax") + " is not a whole number"
	}
	return s
}

// decodePath turns mapstructure's "services[web].deploy.resources" into "services.web.deploy.resources".
func decodePath(p string) string {
	p = strings.ReplaceAll(p, "[", ".")
	p = strings.ReplaceAll(p, "]", "")
	return p
}

func serviceNames(docs []yamlDoc) []string {
	set := map[string]bool{}
	for _, d := range docs {
		if d.root == nil {
			continue
		}
		if _, v := lookup(d.root, []string{"services"}); v != nil && v.Kind == mapNode {
			for i := 0; i+1 < len(v.Content); i += 2 {
				set[v.Content[i].Value] = true
			}
		}
	}
	names := make([]string, 0, len(set))
	for n := range set {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func serviceHint(name string, docs []yamlDoc) string {
	names := serviceNames(docs)
	if c := closest(name, names); c != "" {
		return fmt.Sprintf("did you mean %q?", c)
	}
	if len(names) > 0 && len(names) <= 20 {
		return "defined services: " + strings.Join(names, ", ")
	}
	return "define the service under services:, or remove it from depends_on"
}

func locateDependsOn(e *Error, docs []yamlDoc, svc, dep string) *Error {
	base := "services." + svc + ".depends_on"
	for _, d := range docs {
		if d.root == nil {
			continue
		}
		_, v := lookup(d.root, splitPath(base))
		if v == nil {
			continue
		}
		switch v.Kind {
		case seqNode:
			for i, it := range v.Content {
				if it.Value == dep {
					e.Path = fmt.Sprintf("%s[%d]", base, i)
					e.File, e.Line, e.Column = d.file, it.Line, it.Column
					return e
				}
			}
		case mapNode:
			for i := 0; i+1 < len(v.Content); i += 2 {
				if v.Content[i].Value == dep {
					e.Path = base + "." + dep
					e.File, e.Line, e.Column = d.file, v.Content[i].Line, v.Content[i].Column
					return e
				}
			}
		}
	}
	return locate(e, docs, base)
}

// portError finds the port entry compose-go could not parse and explains the syntax.
func portError(err error, docs []yamlDoc) *Error {
	hint := `use HOST:CONTAINER, e.g. "8080:80" (in full: [HOST_IP:][HOST_PORT:]CONTAINER_PORT[/PROTOCOL], e.g. "127.0.0.1:8080:80" or "53:53/udp"); ports are 1-65535`
	e := invalid(err, "", "ports", fmt.Sprintf("not a port mapping (%s)", err.Error()), hint)
	for _, d := range docs {
		if d.root == nil {
			continue
		}
		_, svcs := lookup(d.root, []string{"services"})
		if svcs == nil || svcs.Kind != mapNode {
			continue
		}
		for i := 0; i+1 < len(svcs.Content); i += 2 {
			name := svcs.Content[i].Value
			_, ports := lookup(svcs.Content[i+1], []string{"ports"})
			if ports == nil || ports.Kind != seqNode {
				continue
			}
			for j, p := range ports.Content {
				if p.Kind != scalarNode || strings.Contains(p.Value, "$") {
					continue
				}
				if _, perr := types.ParsePortConfig(p.Value); perr != nil {
					e.File, e.Line, e.Column = d.file, p.Line, p.Column
					e.Path = fmt.Sprintf("services.%s.ports[%d]", name, j)
					e.Msg = fmt.Sprintf("%q is not a port mapping: %s", p.Value, perr.Error())
					return e
				}
			}
		}
	}
	return e
}

func nameSuggestion(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '_', r == '-':
			b.WriteRune(r)
		case r == ' ':
			b.WriteRune('-')
		}
	}
	if b.Len() == 0 {
		return "app"
	}
	return b.String()
}
