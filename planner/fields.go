package planner

import (
	"crypto/sha256"
	"encoding/hex"
	"reflect"
	"slices"
	"strings"
	"unicode"

	"github.com/berth-dev/berth/spec"
)

// composeKeys maps spec.Service field names to the Compose keys named in reasons.
var composeKeys = map[string]string{
	"Image":           "image",
	"Command":         "command",
	"Entrypoint":      "entrypoint",
	"Environment":     "environment",
	"EnvFiles":        "env_file",
	"WorkingDir":      "working_dir",
	"User":            "user",
	"GroupAdd":        "group_add",
	"Hostname":        "hostname",
	"Domainname":      "domainname",
	"ContainerName":   "container_name",
	"Ports":           "ports",
	"Expose":          "expose",
	"Volumes":         "volumes",
	"VolumesFrom":     "volumes_from",
	"Tmpfs":           "tmpfs",
	"Networks":        "networks",
	"NetworkMode":     "network_mode",
	"Links":           "links",
	"ExtraHosts":      "extra_hosts",
	"DNS":             "dns",
	"DNSSearch":       "dns_search",
	"DNSOpt":          "dns_opt",
	"MacAddress":      "mac_address",
	"Healthcheck":     "healthcheck",
	"Restart":         "restart",
	"StopSignal":      "stop_signal",
	"StopGracePeriod": "stop_grace_period",
	"Init":            "init",
	"Labels":          "labels",
	"Annotations":     "annotations",
	"Resources":       "resources",
	"Ulimits":         "ulimits",
	"CapAdd":          "cap_add",
	"CapDrop":         "cap_drop",
	"Privileged":      "privileged",
	"ReadOnly":        "read_only",
	"SecurityOpt":     "security_opt",
	"Sysctls":         "sysctls",
	"Devices":         "devices",
	"ShmSize":         "shm_size",
	"IPC":             "ipc",
	"PID":             "pid",
	"UsernsMode":      "userns_mode",
	"Tty":             "tty",
	"StdinOpen":       "stdin_open",
	"Logging":         "logging",
	"PullPolicy":      "pull_policy",
	"Platform":        "platform",
	"Secrets":         "secrets",
	"Configs":         "configs",
	"Extensions":      "extensions",
}

// hashExcluded are the fields ServiceHash ignores, and so FieldHashes too.
var hashExcluded = map[string]bool{"Name": true, "Scale": true, "DependsOn": true, "Profiles": true, "Build": true}

// FieldHashes hashes each part of the service that ServiceHash covers, keyed by its Compose key
// (environment, ports, ...). The engine may store them with a container
// (Container.FieldHashes); the planner then names the changed keys in a recreate's reason.
func FieldHashes(s spec.Service) map[string]string {
	v := reflect.ValueOf(s)
	t := v.Type()
	out := make(map[string]string, t.NumField())
	buf := make([]byte, 0, 256)
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() || hashExcluded[f.Name] {
			continue
		}
		buf = encodeValue(buf[:0], v.Field(i))
		sum := sha256.Sum256(buf)
		out[fieldKey(f.Name)] = hex.EncodeToString(sum[:8])
	}
	return out
}

func fieldKey(name string) string {
	if k, ok := composeKeys[name]; ok {
		return k
	}
	var b strings.Builder
	for i, r := range name {
		if unicode.IsUpper(r) {
			if i > 0 {
				b.WriteByte('_')
			}
			r = unicode.ToLower(r)
		}
		b.WriteRune(r)
	}
	return b.String()
}

// changedFields lists the keys whose hashes differ between old and new, sorted.
func changedFields(old, new map[string]string) []string {
	var out []string
	for k, v := range new {
		if old[k] != v {
			out = append(out, k)
		}
	}
	for k := range old {
		if _, ok := new[k]; !ok {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// NetworkHash is the config hash of a project network. The engine records it when it
// creates the network (Network.Hash); a different hash means the network's definition
// changed since.
func NetworkHash(n spec.Network) string {
	sum := sha256.Sum256(encodeValue(nil, reflect.ValueOf(n)))
	return hex.EncodeToString(sum[:])
}
