package spec

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"

	"github.com/compose-spec/compose-go/v2/types"
)

// minMemory is the smallest memory limit the kernel and runc accept for a container.
const minMemory = 6 * 1024 * 1024

// checkEnvFiles reports a required env_file that does not exist, naming the service and entry.
func checkEnvFiles(cp *types.Project, files []string) error {
	for _, name := range sortedKeys(cp.Services) {
		s := cp.Services[name]
		for i, ef := range s.EnvFiles {
			if !bool(ef.Required) {
				continue
			}
			fi, err := os.Stat(ef.Path)
			if err == nil && !fi.IsDir() {
				continue
			}
			path := fmt.Sprintf("services.%s.env_file[%d]", name, i)
			msg := fmt.Sprintf("env file %s does not exist", ef.Path)
			if err == nil {
				msg = fmt.Sprintf("env file %s is a directory", ef.Path)
			} else if !errors.Is(err, fs.ErrNotExist) {
				msg = fmt.Sprintf("env file %s: %v", ef.Path, err)
			}
			e := invalid(err, "", path, msg,
				"create the file, fix the path (relative to the project directory), or make it optional:\n"+
					"env_file:\n  - path: "+ef.Path+"\n    required: false")
			docs := parseDocs(files)
			if _, v := lookupAny(docs, servicePath(name, "env_file")); v != nil && v.Kind != seqNode {
				path = servicePath(name, "env_file")
				e.Path = path
			}
			return locate(e, docs, e.Path)
		}
	}
	return nil
}

// validateProject checks what compose-go accepts but no container engine would: values berth
// (like Docker) rejects at create time are reported now, before anything is created.
func validateProject(cp *types.Project, files []string) error {
	var docs []yamlDoc
	fail := func(e *Error) error {
		if docs == nil {
			docs = parseDocs(files)
		}
		return locate(e, docs, e.Path)
	}
	if err := cp.CheckContainerNameUnicity(); err != nil {
		return fail(invalid(err, "", "", err.Error(), "give every service its own container_name, or remove container_name"))
	}
	for _, name := range sortedKeys(cp.Services) {
		s := cp.Services[name]
		if s.Restart != "" && !validRestart(s.Restart) {
			return fail(invalid(nil, "", servicePath(name, "restart"), fmt.Sprintf("%q is not a restart policy", s.Restart),
				`use one of "no", "always", "on-failure", "on-failure:N" (N retries) or "unless-stopped"`))
		}
		if s.MemLimit < 0 {
			return fail(invalid(nil, "", servicePath(name, "mem_limit"), "memory limit must not be negative",
				`write a size with a unit, e.g. mem_limit: 512m`))
		}
		if s.MemLimit != 0 && s.MemLimit < minMemory {
			return fail(invalid(nil, "", servicePath(name, "mem_limit"), fmt.Sprintf("memory limit %d bytes is below the 6 MiB minimum", s.MemLimit),
				`write a size with a unit, e.g. mem_limit: 512m (a bare number is bytes)`))
		}
		if s.Deploy != nil && s.Deploy.Resources.Limits != nil {
			if m := s.Deploy.Resources.Limits.MemoryBytes; m != 0 && m < minMemory {
				return fail(invalid(nil, "", servicePath(name, "deploy.resources.limits.memory"),
					fmt.Sprintf("memory limit %d bytes is below the 6 MiB minimum", m),
					`write a size with a unit, e.g. memory: 512m (a bare number is bytes)`))
			}
			if c := s.Deploy.Resources.Limits.NanoCPUs; c < 0 {
				return fail(invalid(nil, "", servicePath(name, "deploy.resources.limits.cpus"), "cpus must not be negative",
					`write a positive number of CPUs, e.g. cpus: "0.5"`))
			}
		}
		if s.CPUS < 0 {
			return fail(invalid(nil, "", servicePath(name, "cpus"), "cpus must not be negative",
				`write a positive number of CPUs, e.g. cpus: 0.5`))
		}
		for i, p := range s.Ports {
			path := fmt.Sprintf("services.%s.ports[%d]", name, i)
			if p.Target == 0 || p.Target > 65535 {
				return fail(invalid(nil, "", path, fmt.Sprintf("container port %d is out of range", p.Target),
					"container ports are 1-65535, e.g. target: 80"))
			}
			if p.Published != "" && !validPublished(p.Published) {
				return fail(invalid(nil, "", path, fmt.Sprintf("published port %q is not a port or range", p.Published),
					`write a host port (published: "8080") or a range (published: "8000-8010"); ports are 1-65535`))
			}
			if p.Protocol != "" && p.Protocol != "tcp" && p.Protocol != "udp" {
				return fail(invalid(nil, "", path, fmt.Sprintf("protocol %q is not supported", p.Protocol),
					`use "tcp" or "udp"`))
			}
		}
		if e := checkSharing(name, s); e != nil {
			return fail(e)
		}
		for i, v := range s.Volumes {
			switch v.Type {
			case types.VolumeTypeBind, types.VolumeTypeVolume, types.VolumeTypeTmpfs:
			default:
				return fail(invalid(nil, "", fmt.Sprintf("services.%s.volumes[%d]", name, i),
					fmt.Sprintf("volume type %q is not supported by berth", v.Type),
					`use a named volume ("data:/path"), a bind mount ("./dir:/path") or type: tmpfs`))
			}
		}
	}
	return nil
}

func validRestart(s string) bool {
	switch s {
	case "no", "always", "unless-stopped", "on-failure":
		return true
	}
	if n, ok := strings.CutPrefix(s, "on-failure:"); ok {
		v, err := strconv.Atoi(n)
		return err == nil && v >= 0
	}
	return false
}

func validPublished(s string) bool {
	lo, hi, isRange := strings.Cut(s, "-")
	a, err := strconv.Atoi(lo)
	if err != nil || a < 0 || a > 65535 {
		return false
	}
	if !isRange {
		return true
	}
	b, err := strconv.Atoi(hi)
	return err == nil && b >= a && b <= 65535
}

func lookupAny(docs []yamlDoc, path string) (string, *yamlNode) {
	for _, d := range docs {
		if d.root == nil {
			continue
		}
		if _, v := lookup(d.root, splitPath(path)); v != nil {
			return d.file, v
		}
	}
	return "", nil
}

// checkSharing checks the values of pid, ipc, userns_mode and volumes_from (which services
// they name is the planner's check).
func checkSharing(name string, s types.ServiceConfig) *Error {
	shared := func(v string) bool {
		ref, ok := strings.CutPrefix(v, types.ServicePrefix)
		if !ok {
			ref, ok = strings.CutPrefix(v, types.ContainerPrefix)
		}
		return ok && ref != ""
	}
	if s.Pid != "" && s.Pid != "host" && !shared(s.Pid) {
		return invalid(nil, "", servicePath(name, "pid"), fmt.Sprintf("%q is not a PID namespace mode", s.Pid),
			`use "host", "service:NAME" or "container:NAME"`)
	}
	switch s.Ipc {
	case "", "private", "shareable", "none", "host":
	default:
		if !shared(s.Ipc) {
			return invalid(nil, "", servicePath(name, "ipc"), fmt.Sprintf("%q is not an IPC namespace mode", s.Ipc),
				`use "private", "shareable", "none", "host", "service:NAME" or "container:NAME"`)
		}
	}
	switch s.UserNSMode {
	case "", "host", "auto":
	default:
		return invalid(nil, "", servicePath(name, "userns_mode"), fmt.Sprintf("%q is not a user namespace mode berth supports", s.UserNSMode),
			`use "host" (no user namespace, the default) or "auto" (container root is an unprivileged host user from a range berth picks)`)
	}
	if s.UserNSMode == "auto" {
		for _, kv := range []struct{ key, val string }{{"network_mode", s.NetworkMode}, {"pid", s.Pid}, {"ipc", s.Ipc}} {
			if kv.val == "host" || (kv.key != "network_mode" && shared(kv.val)) {
				return invalid(nil, "", servicePath(name, "userns_mode"),
					fmt.Sprintf(`userns_mode "auto" cannot be combined with %s: %q`, kv.key, kv.val),
					`a user namespace cannot share the host's or another container's namespaces; remove one of the two`)
			}
		}
		if s.Privileged {
			return invalid(nil, "", servicePath(name, "userns_mode"), `userns_mode "auto" cannot be combined with privileged: true`,
				`remove privileged, or use userns_mode: host`)
		}
	}
	for i, v := range s.VolumesFrom {
		rest := strings.TrimPrefix(v, types.ContainerPrefix)
		ref, mode, _ := strings.Cut(rest, ":")
		if ref == "" || (mode != "" && mode != "ro" && mode != "rw") {
			return invalid(nil, "", fmt.Sprintf("services.%s.volumes_from[%d]", name, i), fmt.Sprintf("%q is not a volumes_from entry", v),
				`write SERVICE, SERVICE:ro, container:NAME or container:NAME:rw`)
		}
	}
	return nil
}
