package convert

import (
	"regexp"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
)

// dnsLabel turns a compose name into a DNS-1035 label (what Service names need): lower case,
// other characters replaced by '-', starting with a letter, at most 63 characters.
func dnsLabel(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
	}
	out := strings.Trim(b.String(), "-")
	switch {
	case out == "":
		out = "x"
	case out[0] < 'a' || out[0] > 'z':
		out = "x-" + out
	}
	if len(out) > 63 {
		out = strings.TrimRight(out[:63], "-")
	}
	return out
}

func isDNSLabel(s string) bool { return len(validation.IsDNS1035Label(s)) == 0 }

var (
	qualifiedNameRe = regexp.MustCompile(`^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$`)
	labelValueRe    = regexp.MustCompile(`^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$`)
)

// isQualifiedName reports whether s may be a label or annotation key.
func isQualifiedName(s string) bool {
	prefix, name, ok := strings.Cut(s, "/")
	if !ok {
		name, prefix = prefix, ""
	} else if prefix == "" || len(validation.IsDNS1123Subdomain(prefix)) != 0 {
		return false
	}
	return len(name) <= 63 && qualifiedNameRe.MatchString(name)
}

// labelValue makes s a valid label value.
func labelValue(s string) string {
	if len(s) <= 63 && labelValueRe.MatchString(s) {
		return s
	}
	return dnsLabel(s)
}

// portName is a Service/container port name: "tcp-80".
func portName(proto string, port int32) string {
	return strings.ToLower(proto) + "-" + itoa(int64(port))
}

// networkLabel is the pod label key that marks membership of a compose network.
func networkLabel(net string) string {
	name := dnsLabel(net)
	if max := 63 - len("network-"); len(name) > max {
		name = strings.TrimRight(name[:max], "-")
	}
	return labelNetwork + name
}
