// Package convert turns a loaded berth project (spec.Project) into Kubernetes objects.
//
// The conversion is pure: Convert reads nothing but the secret and config files the project
// names, and those only through the Files interface the caller passes in. The same project
// and options always give the same objects in the same order, so the output can be diffed
// and checked in.
//
// What Kubernetes cannot express is never dropped silently: every such key becomes a Warning
// that names the service and the key. Notes are informational (an image that must be pushed,
// an external volume that must exist); they do not fail a --strict conversion.
package convert

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/berth-dev/berth/spec"
)

// ErrStrict is returned (wrapped) by Convert when Options.Strict is set and the conversion
// produced warnings.
var ErrStrict = errors.New("project cannot be converted without loss")

// ErrInvalid classes options or names that make a conversion impossible.
var ErrInvalid = errors.New("cannot convert project")

// Files reads the secret and config files that the project names. Paths are absolute.
type Files interface {
	ReadFile(path string) ([]byte, error)
}

// Expose modes for Options.ExposePorts.
const (
	ExposeNone         = ""
	ExposeLoadBalancer = "LoadBalancer"
	ExposeNodePort     = "NodePort"
)

// Default images of the init containers that wait for dependencies.
const (
	DefaultWaitImage    = "busybox:1.36"
	DefaultKubectlImage = "bitnami/kubectl:1.32"
	DefaultVolumeSize   = "1Gi"
)

// Labels and annotations berth reads from volumes and writes on objects.
const (
	// LabelVolumeSize on a named volume sets its PersistentVolumeClaim's size ("10Gi").
	LabelVolumeSize = "berth.dev/size"
	// LabelStorageClass on a named volume sets its PersistentVolumeClaim's storage class.
	LabelStorageClass = "berth.dev/storage-class"

	labelService   = "berth.dev/service"
	labelProject   = "app.kubernetes.io/part-of"
	labelManagedBy = "app.kubernetes.io/managed-by"
	labelNetwork   = "berth.dev/network-"
)

// Options tune a conversion.
type Options struct {
	// Namespace is written into every object's metadata; empty leaves it to kubectl.
	Namespace string
	// ExposePorts is ExposeNone, ExposeLoadBalancer or ExposeNodePort: the Service type that
	// published ports get, in addition to the ClusterIP Service named after each service.
	ExposePorts string
	// AllowHostPath maps bind mounts to hostPath volumes instead of warning about them.
	AllowHostPath bool
	// VolumeSize is the size of a PersistentVolumeClaim whose volume has no LabelVolumeSize
	// label; DefaultVolumeSize when empty.
	VolumeSize string
	// WaitImage runs the init containers that wait for a dependency's Service;
	// DefaultWaitImage when empty.
	WaitImage string
	// KubectlImage runs the init containers that wait for a dependency's Job;
	// DefaultKubectlImage when empty.
	KubectlImage string
	// Strict turns warnings into an error wrapping ErrStrict.
	Strict bool
}

// Warning is something of the project that the objects do not carry, or carry differently.
type Warning struct {
	Service string // empty for project-level keys
	Key     string // compose key path below the service, e.g. "ports[0]"
	Msg     string
}

func (w Warning) String() string {
	var path string
	switch {
	case w.Service != "" && w.Key != "":
		path = "services." + w.Service + "." + w.Key
	case w.Service != "":
		path = "services." + w.Service
	default:
		path = w.Key
	}
	if path == "" {
		return w.Msg
	}
	return path + ": " + w.Msg
}

// Object is one Kubernetes object: a pointer to a typed k8s.io/api value with its TypeMeta set.
type Object struct {
	Kind  string
	Name  string
	Value any
}

// Result is the outcome of a conversion.
type Result struct {
	Objects  []Object  // sorted by kind order, then name
	Warnings []Warning // lossy mappings, sorted
	Notes    []Warning // things to do before applying, sorted
}

// kindOrder is the order objects are emitted in: what others refer to comes first.
var kindOrder = []string{
	"ServiceAccount", "Role", "RoleBinding",
	"ConfigMap", "Secret", "PersistentVolumeClaim", "Service",
	"Deployment", "StatefulSet", "Job", "NetworkPolicy",
}

func kindRank(k string) int {
	for i, o := range kindOrder {
		if o == k {
			return i
		}
	}
	return len(kindOrder)
}

// Convert maps p to Kubernetes objects. files reads the secret and config files p names; it
// may be nil when p has none.
func Convert(p *spec.Project, files Files, opt Options) (*Result, error) {
	if p == nil {
		return nil, fmt.Errorf("convert: no project: %w", ErrInvalid)
	}
	switch opt.ExposePorts {
	case ExposeNone, ExposeLoadBalancer, ExposeNodePort:
	default:
		return nil, fmt.Errorf("expose ports %q: want %s or %s: %w", opt.ExposePorts, ExposeLoadBalancer, ExposeNodePort, ErrInvalid)
	}
	if opt.VolumeSize == "" {
		opt.VolumeSize = DefaultVolumeSize
	}
	if _, err := parseQuantity(opt.VolumeSize); err != nil {
		return nil, fmt.Errorf("volume size %q: %v: %w", opt.VolumeSize, err, ErrInvalid)
	}
	if opt.WaitImage == "" {
		opt.WaitImage = DefaultWaitImage
	}
	if opt.KubectlImage == "" {
		opt.KubectlImage = DefaultKubectlImage
	}
	c := &converter{p: p, files: files, opt: opt, names: map[string]string{}}
	if err := c.run(); err != nil {
		return nil, err
	}
	res := &Result{Objects: c.objects, Warnings: c.warnings, Notes: c.notes}
	sort.SliceStable(res.Objects, func(i, j int) bool {
		a, b := res.Objects[i], res.Objects[j]
		if ra, rb := kindRank(a.Kind), kindRank(b.Kind); ra != rb {
			return ra < rb
		}
		return a.Name < b.Name
	})
	for i := 1; i < len(res.Objects); i++ {
		a, b := res.Objects[i-1], res.Objects[i]
		if a.Kind == b.Kind && a.Name == b.Name {
			return nil, fmt.Errorf("two objects would both be %s %q; rename one of the services, volumes, secrets or configs: %w", a.Kind, a.Name, ErrInvalid)
		}
	}
	sortWarnings(res.Warnings)
	sortWarnings(res.Notes)
	if opt.Strict && len(res.Warnings) > 0 {
		msgs := make([]string, len(res.Warnings))
		for i, w := range res.Warnings {
			msgs[i] = "  " + w.String()
		}
		return res, fmt.Errorf("%w:\n%s", ErrStrict, strings.Join(msgs, "\n"))
	}
	return res, nil
}

func sortWarnings(ws []Warning) {
	sort.SliceStable(ws, func(i, j int) bool {
		a, b := ws[i], ws[j]
		if a.Service != b.Service {
			return a.Service < b.Service
		}
		if a.Key != b.Key {
			return a.Key < b.Key
		}
		return a.Msg < b.Msg
	})
}
