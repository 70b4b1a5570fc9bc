package convert

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/berth-dev/berth/spec"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/convert")

const goldenDir = "../testdata/convert"

// mapFiles is an in-memory Files.
type mapFiles map[string]string

func (m mapFiles) ReadFile(path string) ([]byte, error) {
	s, ok := m[path]
	if !ok {
		return nil, fmt.Errorf("open %s: %w", path, fs.ErrNotExist)
	}
	return []byte(s), nil
}

var _ Files = mapFiles(nil)

type goldenCase struct {
	name    string
	project func() *spec.Project
	files   mapFiles
	opt     Options
}

func goldenCases() []goldenCase {
	return []goldenCase{
		{name: "basic", project: projectBasic},
		{name: "oneshot", project: projectOneshot},
		{name: "stateful", project: projectStateful},
		{name: "volumes", project: projectVolumes, opt: Options{VolumeSize: "5Gi"}},
		{name: "hostpath", project: projectHostpath, opt: Options{AllowHostPath: true}},
		{name: "files", project: projectFiles, files: filesFiles()},
		{name: "networks", project: projectNetworks},
		{name: "expose-lb", project: func() *spec.Project { return projectExpose("expose-lb") }, opt: Options{ExposePorts: ExposeLoadBalancer, Namespace: "shop"}},
		{name: "expose-nodeport", project: func() *spec.Project { return projectExpose("expose-nodeport") }, opt: Options{ExposePorts: ExposeNodePort}},
		{name: "security", project: projectSecurity},
	}
}

// report renders warnings and notes the way the command prints them.
func report(r *Result) string {
	var b strings.Builder
	for _, w := range r.Warnings {
		fmt.Fprintf(&b, "warning: %s\n", w)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "note: %s\n", n)
	}
	return b.String()
}

func checkGolden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./convert -update)", err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("%s differs (-want +got; go test ./convert -update rewrites it):\n%s", path, diff)
	}
}

func TestGolden(t *testing.T) {
	for _, tc := range goldenCases() {
		t.Run(tc.name, func(t *testing.T) {
			res, err := Convert(tc.project(), tc.files, tc.opt)
			if err != nil {
				t.Fatal(err)
			}
			out, err := Marshal(res.Objects, FormatYAML)
			if err != nil {
				t.Fatal(err)
			}
			checkGolden(t, filepath.Join(goldenDir, tc.name, "golden.yaml"), out)
			checkGolden(t, filepath.Join(goldenDir, tc.name, "warnings.txt"), []byte(report(res)))
			for _, doc := range splitDocs(out) {
				decodeStrict(t, doc)
			}
			// Same input, same bytes.
			again, err := Convert(tc.project(), tc.files, tc.opt)
			if err != nil {
				t.Fatal(err)
			}
			out2, _ := Marshal(again.Objects, FormatYAML)
			if !bytes.Equal(out, out2) {
				t.Error("second conversion gave different output")
			}
		})
	}
}

func splitDocs(b []byte) [][]byte {
	var docs [][]byte
	for _, d := range bytes.Split(b, []byte("\n---\n")) {
		if len(bytes.TrimSpace(d)) > 0 {
			docs = append(docs, append(d, '\n'))
		}
	}
	return docs
}

// typed returns an empty value of the Kubernetes type for kind.
func typed(t *testing.T, kind string) any {
	switch kind {
	case "Deployment":
		return &appsv1.Deployment{}
	case "StatefulSet":
		return &appsv1.StatefulSet{}
	case "Job":
		return &batchv1.Job{}
	case "Service":
		return &corev1.Service{}
	case "ConfigMap":
		return &corev1.ConfigMap{}
	case "Secret":
		return &corev1.Secret{}
	case "PersistentVolumeClaim":
		return &corev1.PersistentVolumeClaim{}
	case "ServiceAccount":
		return &corev1.ServiceAccount{}
	case "NetworkPolicy":
		return &networkingv1.NetworkPolicy{}
	case "Role":
		return &rbacv1.Role{}
	case "RoleBinding":
		return &rbacv1.RoleBinding{}
	}
	t.Fatalf("unexpected kind %q", kind)
	return nil
}

// decodeStrict decodes one YAML document into its Kubernetes type, rejecting unknown fields.
func decodeStrict(t *testing.T, doc []byte) {
	t.Helper()
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal(doc, &tm); err != nil {
		t.Fatalf("decode type: %v\n%s", err, doc)
	}
	if tm.APIVersion == "" || tm.Kind == "" {
		t.Fatalf("document without apiVersion/kind:\n%s", doc)
	}
	v := typed(t, tm.Kind)
	if err := yaml.UnmarshalStrict(doc, v); err != nil {
		t.Errorf("%s does not decode strictly: %v\n%s", tm.Kind, err, doc)
	}
}

func TestJSONDecodesStrictly(t *testing.T) {
	res, err := Convert(projectBasic(), nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range res.Objects {
		b, err := o.Marshal(FormatJSON)
		if err != nil {
			t.Fatal(err)
		}
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(typed(t, o.Kind)); err != nil {
			t.Errorf("%s %s: %v", o.Kind, o.Name, err)
		}
		if got, want := o.FileName(FormatJSON), o.Name+"-"+strings.ToLower(o.Kind)+".json"; got != want {
			t.Errorf("FileName = %q, want %q", got, want)
		}
	}
	list, err := Marshal(res.Objects, FormatJSON)
	if err != nil {
		t.Fatal(err)
	}
	var l corev1.List
	dec := json.NewDecoder(bytes.NewReader(list))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&l); err != nil {
		t.Fatal(err)
	}
	if len(l.Items) != len(res.Objects) {
		t.Errorf("list has %d items, want %d", len(l.Items), len(res.Objects))
	}
}

func TestStrict(t *testing.T) {
	_, err := Convert(projectBasic(), nil, Options{Strict: true})
	if !errors.Is(err, ErrStrict) {
		t.Fatalf("err = %v, want ErrStrict", err)
	}
	if !strings.Contains(err.Error(), "services.web.ports[0]: published port 8080") {
		t.Errorf("error does not name the service and key:\n%v", err)
	}
	// A project without lossy keys converts under --strict, notes and all.
	p := newProject("clean",
		spec.Service{Name: "app", Build: &spec.Build{Context: "/src"}, Expose: []string{"80"}},
	)
	res, err := Convert(p, nil, Options{Strict: true})
	if err != nil {
		t.Fatalf("clean project: %v", err)
	}
	if len(res.Notes) != 1 || !strings.Contains(res.Notes[0].String(), "berth push") {
		t.Errorf("notes = %v, want the push note", res.Notes)
	}
}

func TestErrors(t *testing.T) {
	tests := []struct {
		name  string
		p     *spec.Project
		files Files
		opt   Options
		want  error
	}{
		{name: "bad expose mode", p: newProject("x"), opt: Options{ExposePorts: "Ingress"}, want: ErrInvalid},
		{name: "bad volume size", p: newProject("x"), opt: Options{VolumeSize: "lots"}, want: ErrInvalid},
		{
			name: "name collision",
			p:    newProject("x", spec.Service{Name: "my_app", Image: "a"}, spec.Service{Name: "my-app", Image: "b"}),
			want: ErrInvalid,
		},
		{
			name:  "unreadable secret",
			p:     projectFiles(),
			files: mapFiles{},
			want:  fs.ErrNotExist,
		},
		{name: "no file reader", p: projectFiles(), want: ErrInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Convert(tc.p, tc.files, tc.opt)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

// TestEveryMappingCovered guards the golden set: each mapping of the issue appears somewhere.
func TestEveryMappingCovered(t *testing.T) {
	var all strings.Builder
	for _, tc := range goldenCases() {
		res, err := Convert(tc.project(), tc.files, tc.opt)
		if err != nil {
			t.Fatal(err)
		}
		out, err := Marshal(res.Objects, FormatYAML)
		if err != nil {
			t.Fatal(err)
		}
		all.Write(out)
		all.WriteString(report(res))
	}
	s := all.String()
	for _, want := range []string{
		"kind: Deployment", "kind: StatefulSet", "kind: Job", "kind: Service\n",
		"type: ClusterIP", "clusterIP: None", "type: LoadBalancer", "type: NodePort",
		"kind: PersistentVolumeClaim", "volumeClaimTemplates", "hostPath:", "bind mount",
		"medium: Memory", "envFrom:", "kind: Secret", "kind: ConfigMap", "subPath:",
		"readinessProbe:", "livenessProbe:", "initialDelaySeconds:", "initContainers:",
		"kubectl wait", "nc -z", "limits:", "requests:", "runAsUser:", "capabilities:",
		"readOnlyRootFilesystem: true", "privileged: true", "terminationGracePeriodSeconds:",
		"restartPolicy: OnFailure", "kind: NetworkPolicy", "berth push", "namespace: shop",
		"hostAliases:", "dnsConfig:", "hostNetwork: true", "nodeSelector:",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("no golden project shows %q", want)
		}
	}
}
