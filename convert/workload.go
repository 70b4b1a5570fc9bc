package convert

import (
	"fmt"
	"math"
	"net"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/berth-dev/berth/spec"
)

// Workload kinds.
const (
	kindDeployment  = "Deployment"
	kindStatefulSet = "StatefulSet"
	kindJob         = "Job"
)

// converter holds the state of one conversion.
type converter struct {
	p     *spec.Project
	files Files
	opt   Options

	objects  []Object
	warnings []Warning
	notes    []Warning

	svcName   map[string]string // compose service -> Kubernetes name
	svcKind   map[string]string // compose service -> workload kind
	svcPorts  map[string][]corev1.ServicePort
	volUsers  map[string][]string // volume key -> services mounting it
	names     map[string]string   // Service object name -> owner (for aliases)
	needsWait bool                // some pod waits for a Job: emit the RBAC objects
	secrets   map[string]bool     // referenced top-level secrets
	configs   map[string]bool     // referenced top-level configs
	envMaps   []Object
}

func (c *converter) warn(svc, key, format string, args ...any) {
	c.warnings = append(c.warnings, Warning{Service: svc, Key: key, Msg: fmt.Sprintf(format, args...)})
}

func (c *converter) note(svc, key, format string, args ...any) {
	c.notes = append(c.notes, Warning{Service: svc, Key: key, Msg: fmt.Sprintf(format, args...)})
}

func (c *converter) add(kind, name string, v any) {
	c.objects = append(c.objects, Object{Kind: kind, Name: name, Value: v})
}

func (c *converter) meta(name string, extra map[string]string) metav1.ObjectMeta {
	labels := map[string]string{
		labelProject:   labelValue(c.p.Name),
		labelManagedBy: "berth",
	}
	for k, v := range extra {
		labels[k] = v
	}
	return metav1.ObjectMeta{Name: name, Namespace: c.opt.Namespace, Labels: labels}
}

func (c *converter) selector(svc string) map[string]string {
	return map[string]string{labelProject: labelValue(c.p.Name), labelService: c.svcName[svc]}
}

func (c *converter) run() error {
	p := c.p
	c.svcName = map[string]string{}
	c.svcKind = map[string]string{}
	c.svcPorts = map[string][]corev1.ServicePort{}
	c.volUsers = map[string][]string{}
	c.secrets = map[string]bool{}
	c.configs = map[string]bool{}

	owners := map[string]string{}
	completedDependents := map[string]bool{}
	for _, s := range p.Services {
		n := dnsLabel(s.Name)
		if n != s.Name {
			c.warn(s.Name, "", "renamed to %q, a valid Kubernetes name; other services must use that DNS name", n)
		}
		if o, ok := owners[n]; ok {
			return fmt.Errorf("services %q and %q both become %q in Kubernetes; rename one: %w", o, s.Name, n, ErrInvalid)
		}
		owners[n] = s.Name
		c.svcName[s.Name] = n
		c.names[n] = s.Name
		for dep, d := range s.DependsOn {
			if d.Condition == spec.ConditionCompleted {
				completedDependents[dep] = true
			}
		}
		for _, m := range s.Volumes {
			if m.Type == spec.MountVolume && m.Source != "" {
				users := c.volUsers[m.Source]
				if len(users) == 0 || users[len(users)-1] != s.Name {
					c.volUsers[m.Source] = append(users, s.Name)
				}
			}
		}
	}
	for _, s := range p.Services {
		c.svcKind[s.Name] = c.workloadKind(s, completedDependents[s.Name])
		c.svcPorts[s.Name] = c.servicePorts(s)
	}
	for _, s := range p.Services {
		if err := c.service(s); err != nil {
			return err
		}
	}
	c.objects = append(c.objects, c.envMaps...)
	if err := c.fileObjects(); err != nil {
		return err
	}
	c.claims()
	c.networkPolicies()
	if c.opt.Namespace != "" {
		c.note("", "", "namespace %q must exist: kubectl create namespace %s", c.opt.Namespace, c.opt.Namespace)
	}
	if c.needsWait {
		c.waitRBAC()
	}
	return nil
}

// workloadKind picks Job for one-shot services that others wait to complete, StatefulSet for
// replicated services with named volumes, and Deployment for the rest.
func (c *converter) workloadKind(s spec.Service, completedDependents bool) string {
	restart := s.Restart
	if completedDependents && (restart == "" || restart == "no" || strings.HasPrefix(restart, "on-failure")) {
		return kindJob
	}
	if s.Scale > 1 {
		for _, m := range s.Volumes {
			if m.Type == spec.MountVolume && m.Source != "" && !c.p.Volumes[m.Source].External {
				return kindStatefulSet
			}
		}
	}
	return kindDeployment
}

// service emits the workload, Services and side objects of one compose service.
func (c *converter) service(s spec.Service) error {
	name := c.svcName[s.Name]
	kind := c.svcKind[s.Name]
	pod, claims := c.podSpec(s, kind)

	tmplLabels := c.selector(s.Name)
	for net := range s.Networks {
		tmplLabels[networkLabel(net)] = "true"
	}
	tmpl := corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: tmplLabels, Annotations: c.annotations(s)},
		Spec:       pod,
	}
	objMeta := c.meta(name, map[string]string{labelService: name})
	sel := &metav1.LabelSelector{MatchLabels: c.selector(s.Name)}
	replicas := int32(s.Scale)

	switch kind {
	case kindJob:
		tmpl.Spec.RestartPolicy = corev1.RestartPolicyNever
		backoff := int32(0)
		if n, ok := strings.CutPrefix(s.Restart, "on-failure"); ok {
			tmpl.Spec.RestartPolicy = corev1.RestartPolicyOnFailure
			backoff = 6
			if v, err := strconv.Atoi(strings.TrimPrefix(n, ":")); err == nil && v >= 0 {
				backoff = int32(v)
			}
		}
		job := &batchv1.Job{
			TypeMeta:   metav1.TypeMeta{APIVersion: "batch/v1", Kind: kindJob},
			ObjectMeta: objMeta,
			Spec: batchv1.JobSpec{
				Completions:  &replicas,
				Parallelism:  &replicas,
				BackoffLimit: &backoff,
				Template:     tmpl,
			},
		}
		c.add(kindJob, name, job)
		c.note(s.Name, "", "runs as a Job; a Job's pod template cannot change, so delete the Job before applying a changed one")
	case kindStatefulSet:
		c.restartWarning(s)
		ss := &appsv1.StatefulSet{
			TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: kindStatefulSet},
			ObjectMeta: objMeta,
			Spec: appsv1.StatefulSetSpec{
				Replicas:             &replicas,
				Selector:             sel,
				ServiceName:          name,
				Template:             tmpl,
				VolumeClaimTemplates: claims,
			},
		}
		c.add(kindStatefulSet, name, ss)
	default:
		c.restartWarning(s)
		d := &appsv1.Deployment{
			TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: kindDeployment},
			ObjectMeta: objMeta,
			Spec: appsv1.DeploymentSpec{
				Replicas: &replicas,
				Selector: sel,
				Template: tmpl,
			},
		}
		for _, v := range pod.Volumes {
			if v.PersistentVolumeClaim != nil {
				// A ReadWriteOnce claim cannot be attached to the old and the new pod at once.
				d.Spec.Strategy.Type = appsv1.RecreateDeploymentStrategyType
				break
			}
		}
		c.add(kindDeployment, name, d)
	}
	if s.NetworkMode != "none" && (kind != kindJob || len(c.svcPorts[s.Name]) > 0) {
		c.kubeServices(s)
	}
	return nil
}

func (c *converter) restartWarning(s spec.Service) {
	// An explicit "no" or "on-failure" cannot be kept: only Jobs may stop for good, and only
	// services that others wait to complete become Jobs.
	if s.Restart == "no" || strings.HasPrefix(s.Restart, "on-failure") {
		c.warn(s.Name, "restart", "%q: pods of a %s are always restarted", s.Restart, c.svcKind[s.Name])
	}
}

func (c *converter) annotations(s spec.Service) map[string]string {
	out := map[string]string{}
	add := func(key string, m map[string]string) {
		for k, v := range m {
			if !isQualifiedName(k) {
				c.warn(s.Name, key+"."+k, "not a valid Kubernetes annotation key; dropped")
				continue
			}
			out[k] = v
		}
	}
	add("labels", s.Labels)
	add("annotations", s.Annotations)
	if len(out) == 0 {
		return nil
	}
	return out
}

// podSpec builds the pod of service s, and for a StatefulSet the claim templates of its
// named volumes.
func (c *converter) podSpec(s spec.Service, kind string) (corev1.PodSpec, []corev1.PersistentVolumeClaim) {
	ctr := corev1.Container{
		Name:       c.svcName[s.Name],
		Image:      s.ImageName(c.p.Name),
		WorkingDir: s.WorkingDir,
		TTY:        s.Tty,
		Stdin:      s.StdinOpen,
	}
	var pod corev1.PodSpec

	if s.Build != nil {
		c.note(s.Name, "build", "image %q is built locally: push it to a registry the cluster can pull from first (berth push)", ctr.Image)
	}
	switch s.PullPolicy {
	case "always":
		ctr.ImagePullPolicy = corev1.PullAlways
	case "missing", "if_not_present":
		ctr.ImagePullPolicy = corev1.PullIfNotPresent
	case "never":
		ctr.ImagePullPolicy = corev1.PullNever
	case "", "build":
	default:
		c.warn(s.Name, "pull_policy", "%q has no Kubernetes equivalent", s.PullPolicy)
	}

	// Command and entrypoint. Kubernetes expands $(VAR) in them; escape what compose meant literally.
	if s.Entrypoint != nil {
		if len(s.Entrypoint) == 0 {
			c.warn(s.Name, "entrypoint", "an empty entrypoint cannot clear the image's ENTRYPOINT in Kubernetes")
		}
		ctr.Command = escapeAll(s.Entrypoint)
	}
	if s.Command != nil {
		if len(s.Command) == 0 && s.Entrypoint == nil {
			c.warn(s.Name, "command", "an empty command cannot clear the image's CMD in Kubernetes")
		}
		ctr.Args = escapeAll(s.Command)
	}

	c.environment(s, &ctr)
	c.ports(s, &ctr)
	c.healthcheck(s, &ctr)
	c.resources(s, &ctr)
	c.security(s, &ctr, &pod)
	claims := c.mounts(s, kind, &ctr, &pod)
	c.fileRefs(s, &ctr, &pod)

	if s.StopGracePeriod != nil {
		secs := int64(math.Ceil(s.StopGracePeriod.Seconds()))
		pod.TerminationGracePeriodSeconds = &secs
	}
	if s.StopSignal != "" && s.StopSignal != "SIGTERM" {
		c.warn(s.Name, "stop_signal", "%s: Kubernetes stops containers with SIGTERM (stopSignal needs the ContainerStopSignals feature gate)", s.StopSignal)
	}
	if s.Init != nil && *s.Init {
		c.warn(s.Name, "init", "no init process is injected; use an image with its own init (tini) if the process does not reap children")
	}

	c.podNetworking(s, &pod)

	if s.Platform != "" {
		parts := strings.Split(s.Platform, "/")
		pod.NodeSelector = map[string]string{"kubernetes.io/os": parts[0]}
		if len(parts) > 1 {
			pod.NodeSelector["kubernetes.io/arch"] = parts[1]
		}
		if len(parts) > 2 {
			c.warn(s.Name, "platform", "variant %q is not selectable; only os and architecture are", parts[2])
		}
	}
	if s.Logging != nil && (s.Logging.Driver != "" || len(s.Logging.Options) > 0) {
		c.warn(s.Name, "logging", "logging drivers do not exist in Kubernetes; the container logs to the node")
	}
	for _, k := range sortedKeys(s.Ulimits) {
		c.warn(s.Name, "ulimits."+k, "Kubernetes cannot set per-container ulimits")
	}
	if len(s.Devices) > 0 {
		c.warn(s.Name, "devices", "devices need a device plugin in Kubernetes; not mapped")
	}
	if len(s.VolumesFrom) > 0 {
		c.warn(s.Name, "volumes_from", "Kubernetes pods cannot share another pod's volumes; mount the volumes explicitly")
	}
	if s.ContainerName != "" {
		c.warn(s.Name, "container_name", "pods are named by their controller; %q is not used", s.ContainerName)
	}
	if s.UsernsMode != "" {
		c.warn(s.Name, "userns_mode", "%q is not mapped", s.UsernsMode)
	}

	// Dependencies become init containers.
	pod.InitContainers = c.waits(s)
	if c.needsWaitFor(s) {
		pod.ServiceAccountName = c.waiterName()
	}
	pod.Containers = []corev1.Container{ctr}
	return pod, claims
}

// escape protects a literal string from Kubernetes' $(VAR) expansion.
func escape(s string) string {
	if strings.Contains(s, "$(") || strings.Contains(s, "$$") {
		return strings.ReplaceAll(s, "$", "$$")
	}
	return s
}

func escapeAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = escape(s)
	}
	return out
}

// environment maps environment (and env_file, through a ConfigMap) to the container.
func (c *converter) environment(s spec.Service, ctr *corev1.Container) {
	keys := sortedKeys(s.Environment)
	if len(s.EnvFiles) == 0 {
		for _, k := range keys {
			ctr.Env = append(ctr.Env, corev1.EnvVar{Name: k, Value: escape(s.Environment[k])})
		}
		return
	}
	// With env files the whole environment goes into one ConfigMap; keys a ConfigMap
	// cannot hold stay inline.
	name := c.svcName[s.Name] + "-env"
	data := map[string]string{}
	for _, k := range keys {
		if len(validation.IsConfigMapKey(k)) == 0 && len(validation.IsEnvVarName(k)) == 0 {
			data[k] = s.Environment[k]
		} else {
			ctr.Env = append(ctr.Env, corev1.EnvVar{Name: k, Value: escape(s.Environment[k])})
		}
	}
	cm := &corev1.ConfigMap{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: c.meta(name, map[string]string{labelService: c.svcName[s.Name]}),
		Data:       data,
	}
	c.envMaps = append(c.envMaps, Object{Kind: "ConfigMap", Name: name, Value: cm})
	ctr.EnvFrom = []corev1.EnvFromSource{{ConfigMapRef: &corev1.ConfigMapEnvSource{
		LocalObjectReference: corev1.LocalObjectReference{Name: name},
	}}}
}

// servicePorts lists the ports other services reach s on: every container port of ports
// and expose, once per port and protocol.
func (c *converter) servicePorts(s spec.Service) []corev1.ServicePort {
	seen := map[string]bool{}
	var out []corev1.ServicePort
	names := map[string]bool{}
	addPort := func(port int32, proto, name string) {
		p := corev1.Protocol(strings.ToUpper(proto))
		if p == "" {
			p = corev1.ProtocolTCP
		}
		key := portName(string(p), port)
		if seen[key] {
			return
		}
		seen[key] = true
		// A compose port name is kept when Kubernetes accepts it (an IANA service name).
		if name == "" || len(validation.IsValidPortName(name)) != 0 || names[name] {
			name = key
		}
		names[name] = true
		out = append(out, corev1.ServicePort{Name: name, Port: port, Protocol: p, TargetPort: intOrString(port)})
	}
	for i, pt := range s.Ports {
		key := fmt.Sprintf("ports[%d]", i)
		if pt.Protocol != "" && pt.Protocol != "tcp" && pt.Protocol != "udp" && pt.Protocol != "sctp" {
			c.warn(s.Name, key, "protocol %q is not supported", pt.Protocol)
			continue
		}
		if pt.Name != "" && len(validation.IsValidPortName(pt.Name)) != 0 {
			c.warn(s.Name, key+".name", "%q is not a valid Kubernetes port name; a generated one is used", pt.Name)
		}
		addPort(int32(pt.Target), pt.Protocol, pt.Name)
	}
	for i, e := range s.Expose {
		lo, hi, proto, err := parseExpose(e)
		if err != nil {
			c.warn(s.Name, fmt.Sprintf("expose[%d]", i), "%v", err)
			continue
		}
		for p := lo; p <= hi; p++ {
			addPort(p, proto, "")
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Port != out[j].Port {
			return out[i].Port < out[j].Port
		}
		return out[i].Protocol < out[j].Protocol
	})
	return out
}

func parseExpose(e string) (lo, hi int32, proto string, err error) {
	spec, proto, _ := strings.Cut(e, "/")
	if proto == "" {
		proto = "tcp"
	}
	a, b, isRange := strings.Cut(spec, "-")
	x, err1 := strconv.ParseUint(a, 10, 16)
	y := x
	var err2 error
	if isRange {
		y, err2 = strconv.ParseUint(b, 10, 16)
	}
	if err1 != nil || err2 != nil || x == 0 || y < x || y-x > 1000 {
		return 0, 0, "", fmt.Errorf("%q is not a port or a port range", e)
	}
	return int32(x), int32(y), proto, nil
}

func (c *converter) ports(s spec.Service, ctr *corev1.Container) {
	for _, sp := range c.svcPorts[s.Name] {
		ctr.Ports = append(ctr.Ports, corev1.ContainerPort{Name: sp.Name, ContainerPort: sp.Port, Protocol: sp.Protocol})
	}
	for i, pt := range s.Ports {
		key := fmt.Sprintf("ports[%d]", i)
		if pt.Mode == "host" {
			c.warn(s.Name, key, "host mode publishing is mapped like ingress mode")
		}
		if pt.HostIP != "" && pt.HostIP != "0.0.0.0" && pt.HostIP != "::" {
			c.warn(s.Name, key, "host IP %s cannot be kept", pt.HostIP)
		}
		if c.opt.ExposePorts == ExposeNone {
			published := pt.Published
			if published == "" {
				published = "(random)"
			}
			c.warn(s.Name, key, "published port %s is reachable only inside the cluster, at %s:%d; use --expose-ports to publish it",
				published, c.svcName[s.Name], pt.Target)
		}
	}
}

// healthcheck maps a healthcheck to readiness and liveness probes.
func (c *converter) healthcheck(s spec.Service, ctr *corev1.Container) {
	h := s.Healthcheck
	if h == nil || h.Disable || len(h.Test) == 0 || h.Test[0] == "NONE" {
		return
	}
	var cmd []string
	switch h.Test[0] {
	case "CMD":
		cmd = h.Test[1:]
	case "CMD-SHELL":
		cmd = []string{"/bin/sh", "-c", strings.Join(h.Test[1:], " ")}
	default:
		cmd = []string{"/bin/sh", "-c", strings.Join(h.Test, " ")}
	}
	if len(cmd) == 0 {
		c.warn(s.Name, "healthcheck.test", "empty test; no probes")
		return
	}
	interval, timeout, retries := h.Interval, h.Timeout, h.Retries
	if interval == 0 {
		interval = 30 * time.Second
	}
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	if retries == 0 {
		retries = 3
	}
	secs := func(key string, d time.Duration) int32 {
		if d%time.Second != 0 {
			c.warn(s.Name, "healthcheck."+key, "%s rounded up to whole seconds", d)
		}
		v := int32(math.Ceil(d.Seconds()))
		if v < 1 {
			v = 1
		}
		return v
	}
	handler := corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: cmd}}
	readiness := &corev1.Probe{
		ProbeHandler:     handler,
		PeriodSeconds:    secs("interval", interval),
		TimeoutSeconds:   secs("timeout", timeout),
		FailureThreshold: int32(retries),
		SuccessThreshold: 1,
	}
	liveness := *readiness
	liveness.ProbeHandler = corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: append([]string(nil), cmd...)}}
	if h.StartPeriod > 0 {
		liveness.InitialDelaySeconds = secs("start_period", h.StartPeriod)
	}
	if h.StartInterval > 0 {
		c.warn(s.Name, "healthcheck.start_interval", "Kubernetes probes have one period; the interval is used")
	}
	ctr.ReadinessProbe = readiness
	ctr.LivenessProbe = &liveness
}

func (c *converter) resources(s spec.Service, ctr *corev1.Container) {
	r := s.Resources
	limits, requests := corev1.ResourceList{}, corev1.ResourceList{}
	if r.MemLimit > 0 {
		limits[corev1.ResourceMemory] = *resource.NewQuantity(r.MemLimit, resource.BinarySI)
	}
	if r.MemReservation > 0 {
		requests[corev1.ResourceMemory] = *resource.NewQuantity(r.MemReservation, resource.BinarySI)
	}
	if r.CPUs > 0 {
		limits[corev1.ResourceCPU] = *resource.NewMilliQuantity(int64(math.Round(r.CPUs*1000)), resource.DecimalSI)
	}
	if r.CPUShares > 0 {
		// The kubelet turns a CPU request into shares as milli-CPUs * 1024 / 1000.
		requests[corev1.ResourceCPU] = *resource.NewMilliQuantity(max(r.CPUShares*1000/1024, 1), resource.DecimalSI)
	}
	for _, res := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		req, hasReq := requests[res]
		lim, hasLim := limits[res]
		if hasReq && hasLim && req.Cmp(lim) > 0 {
			c.warn(s.Name, "resources", "%s request %s is above the limit %s; lowered to the limit", res, req.String(), lim.String())
			requests[res] = lim
		}
	}
	if r.MemSwapLimit != 0 {
		c.warn(s.Name, "memswap_limit", "swap limits are not mapped")
	}
	if r.Cpuset != "" {
		c.warn(s.Name, "cpuset", "CPU pinning is the kubelet's CPU manager's job; not mapped")
	}
	if r.PidsLimit > 0 {
		c.warn(s.Name, "pids_limit", "pid limits are set per node by the kubelet; not mapped")
	}
	if len(limits) > 0 {
		ctr.Resources.Limits = limits
	}
	if len(requests) > 0 {
		ctr.Resources.Requests = requests
	}
}

func (c *converter) security(s spec.Service, ctr *corev1.Container, pod *corev1.PodSpec) {
	sc := &corev1.SecurityContext{}
	set := false
	if s.User != "" {
		u, g, hasGroup := strings.Cut(s.User, ":")
		uid, err := strconv.ParseInt(u, 10, 64)
		if err != nil {
			c.warn(s.Name, "user", "%q: Kubernetes needs a numeric user ID", s.User)
		} else {
			sc.RunAsUser = &uid
			set = true
		}
		if hasGroup {
			if gid, err := strconv.ParseInt(g, 10, 64); err == nil {
				sc.RunAsGroup = &gid
				set = true
			} else {
				c.warn(s.Name, "user", "%q: Kubernetes needs a numeric group ID", s.User)
			}
		}
	}
	capName := func(s string) corev1.Capability {
		return corev1.Capability(strings.TrimPrefix(strings.ToUpper(s), "CAP_"))
	}
	if len(s.CapAdd) > 0 || len(s.CapDrop) > 0 {
		sc.Capabilities = &corev1.Capabilities{}
		for _, cp := range s.CapAdd {
			sc.Capabilities.Add = append(sc.Capabilities.Add, capName(cp))
		}
		for _, cp := range s.CapDrop {
			sc.Capabilities.Drop = append(sc.Capabilities.Drop, capName(cp))
		}
		set = true
	}
	if s.ReadOnly {
		t := true
		sc.ReadOnlyRootFilesystem = &t
		set = true
	}
	if s.Privileged {
		t := true
		sc.Privileged = &t
		set = true
	}
	for i, o := range s.SecurityOpt {
		key := fmt.Sprintf("security_opt[%d]", i)
		k, v, _ := strings.Cut(strings.Replace(o, "=", ":", 1), ":")
		switch {
		case k == "no-new-privileges" && (v == "" || v == "true"):
			// Kubernetes rejects allowPrivilegeEscalation: false next to privileged or CAP_SYS_ADMIN.
			if s.Privileged || slices.ContainsFunc(s.CapAdd, func(x string) bool { return capName(x) == "SYS_ADMIN" || capName(x) == "ALL" }) {
				c.warn(s.Name, key, "cannot be combined with privileged or SYS_ADMIN in Kubernetes; not mapped")
				continue
			}
			f := false
			sc.AllowPrivilegeEscalation = &f
			set = true
		case k == "seccomp" && v == "unconfined":
			sc.SeccompProfile = &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeUnconfined}
			set = true
		case k == "apparmor" && v == "unconfined":
			sc.AppArmorProfile = &corev1.AppArmorProfile{Type: corev1.AppArmorProfileTypeUnconfined}
			set = true
		default:
			c.warn(s.Name, key, "%q is not mapped", o)
		}
	}
	if set {
		ctr.SecurityContext = sc
	}

	psc := &corev1.PodSecurityContext{}
	pset := false
	for _, g := range s.GroupAdd {
		gid, err := strconv.ParseInt(g, 10, 64)
		if err != nil {
			c.warn(s.Name, "group_add", "%q: Kubernetes needs numeric group IDs", g)
			continue
		}
		psc.SupplementalGroups = append(psc.SupplementalGroups, gid)
		pset = true
	}
	for _, k := range sortedKeys(s.Sysctls) {
		psc.Sysctls = append(psc.Sysctls, corev1.Sysctl{Name: k, Value: s.Sysctls[k]})
		pset = true
	}
	if pset {
		pod.SecurityContext = psc
	}
	switch s.IPC {
	case "", "private", "shareable":
	case "host":
		pod.HostIPC = true
	default:
		c.warn(s.Name, "ipc", "%q is not mapped", s.IPC)
	}
	switch s.PID {
	case "":
	case "host":
		pod.HostPID = true
	default:
		c.warn(s.Name, "pid", "%q is not mapped", s.PID)
	}
}

func (c *converter) podNetworking(s spec.Service, pod *corev1.PodSpec) {
	switch {
	case s.NetworkMode == "host":
		pod.HostNetwork = true
		pod.DNSPolicy = corev1.DNSClusterFirstWithHostNet
	case s.NetworkMode == "none":
		c.warn(s.Name, "network_mode", "pods always have a network; \"none\" is not mapped")
	case s.NetworkMode == "" || s.NetworkMode == "bridge":
	default:
		c.warn(s.Name, "network_mode", "%q: sharing another container's network needs both in one pod; not mapped", s.NetworkMode)
	}
	if s.Hostname != "" {
		if isDNSLabel(s.Hostname) || len(validation.IsDNS1123Label(s.Hostname)) == 0 {
			pod.Hostname = s.Hostname
		} else {
			c.warn(s.Name, "hostname", "%q is not a valid pod hostname", s.Hostname)
		}
	}
	if s.Domainname != "" {
		c.warn(s.Name, "domainname", "pod domain names come from the cluster; %q is not mapped", s.Domainname)
	}
	if s.MacAddress != "" {
		c.warn(s.Name, "mac_address", "not mapped")
	}
	hosts := map[string][]string{}
	for i, h := range s.ExtraHosts {
		name, ip, ok := strings.Cut(h, ":")
		if !ok {
			c.warn(s.Name, fmt.Sprintf("extra_hosts[%d]", i), "%q is not host:ip", h)
			continue
		}
		if ip == "host-gateway" {
			c.warn(s.Name, fmt.Sprintf("extra_hosts[%d]", i), "host-gateway has no Kubernetes equivalent")
			continue
		}
		if net.ParseIP(strings.Trim(ip, "[]")) == nil {
			c.warn(s.Name, fmt.Sprintf("extra_hosts[%d]", i), "%q is not an IP address", ip)
			continue
		}
		ip = strings.Trim(ip, "[]")
		hosts[ip] = append(hosts[ip], name)
	}
	for _, ip := range sortedKeys(hosts) {
		sort.Strings(hosts[ip])
		pod.HostAliases = append(pod.HostAliases, corev1.HostAlias{IP: ip, Hostnames: hosts[ip]})
	}
	if len(s.DNS) > 0 || len(s.DNSSearch) > 0 || len(s.DNSOpt) > 0 {
		dc := &corev1.PodDNSConfig{Nameservers: s.DNS, Searches: s.DNSSearch}
		for _, o := range s.DNSOpt {
			n, v, ok := strings.Cut(o, ":")
			opt := corev1.PodDNSConfigOption{Name: n}
			if ok {
				opt.Value = &v
			}
			dc.Options = append(dc.Options, opt)
		}
		pod.DNSConfig = dc
	}
	for net, sn := range s.Networks {
		if sn.IPv4Address != "" || sn.IPv6Address != "" {
			c.warn(s.Name, "networks."+net, "fixed IP addresses are not mapped")
		}
	}
}

// waits turns depends_on into init containers that wait for each dependency.
func (c *converter) waits(s spec.Service) []corev1.Container {
	var out []corev1.Container
	for _, dep := range sortedKeys(s.DependsOn) {
		d := s.DependsOn[dep]
		key := "depends_on." + dep
		target, ok := c.p.Service(dep)
		if !ok {
			if d.Required {
				c.warn(s.Name, key, "service %q is not enabled; no wait", dep)
			}
			continue
		}
		if d.Restart {
			c.warn(s.Name, key+".restart", "restarting dependents with their dependency is not mapped")
		}
		dn := c.svcName[dep]
		name := dnsLabel("wait-" + dn)
		if c.svcKind[dep] == kindJob {
			c.needsWait = true
			if onlyInternal(c.p, s) {
				c.warn(s.Name, key, "all networks of this service are internal, so the network policies keep the wait from reaching the Kubernetes API")
			}
			script := fmt.Sprintf("until kubectl wait --for=condition=complete --timeout=60s job/%s; do sleep 2; done", dn)
			out = append(out, corev1.Container{Name: name, Image: c.opt.KubectlImage, Command: []string{"/bin/sh", "-c", script}})
			continue
		}
		if d.Condition == spec.ConditionCompleted {
			c.warn(s.Name, key, "%q keeps running (restart %q), so it never completes; waiting for it to be ready instead", dep, target.Restart)
		}
		if d.Condition == spec.ConditionHealthy && (target.Healthcheck == nil || target.Healthcheck.Disable) {
			c.warn(s.Name, key, "%q has no healthcheck; waiting for it to be running", dep)
		}
		if target.NetworkMode == "none" {
			c.warn(s.Name, key, "%q has no Service to wait for", dep)
			continue
		}
		// A Service only routes to, and a headless Service only resolves to, ready pods:
		// readiness comes from the dependency's healthcheck.
		var script string
		ports := c.svcPorts[dep]
		if len(ports) > 0 && !c.reachable(s, target) {
			c.warn(s.Name, key, "%q shares no network with this service, so the network policies keep the wait from connecting; waiting only for its Service to exist", dep)
			ports = nil
		}
		for _, p := range ports {
			if p.Protocol == corev1.ProtocolTCP {
				script = fmt.Sprintf("until nc -z -w 2 %s %d; do sleep 2; done", dn, p.Port)
				break
			}
		}
		if script == "" {
			if len(ports) > 0 {
				c.warn(s.Name, key, "%q has only UDP ports; waiting only for its Service to exist", dep)
			}
			script = fmt.Sprintf("until nslookup %s; do sleep 2; done", dn)
		}
		out = append(out, corev1.Container{Name: name, Image: c.opt.WaitImage, Command: []string{"/bin/sh", "-c", script}})
	}
	return out
}

// reachable reports whether from may connect to to under the generated network policies.
func (c *converter) reachable(from, to spec.Service) bool {
	if to.NetworkMode == "host" || len(to.Networks) == 0 {
		return true // not selected by any policy
	}
	for n := range from.Networks {
		if _, ok := to.Networks[n]; ok {
			return true
		}
	}
	return false
}

// onlyInternal reports whether every network of s is internal (so it has no egress but DNS).
func onlyInternal(p *spec.Project, s spec.Service) bool {
	if s.NetworkMode == "host" || len(s.Networks) == 0 {
		return false
	}
	for n := range s.Networks {
		if !p.Networks[n].Internal {
			return false
		}
	}
	return true
}

// needsWaitFor reports whether s waits for a Job (and so needs the waiter ServiceAccount).
func (c *converter) needsWaitFor(s spec.Service) bool {
	for dep := range s.DependsOn {
		if _, ok := c.p.Service(dep); ok && c.svcKind[dep] == kindJob {
			return true
		}
	}
	return false
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
