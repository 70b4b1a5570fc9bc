package convert

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/berth-dev/berth/spec"
)

func intOrString(p int32) intstr.IntOrString { return intstr.FromInt32(p) }

func parseQuantity(s string) (resource.Quantity, error) { return resource.ParseQuantity(s) }

// kubeServices emits the Service named after s (ClusterIP with its ports, or headless when
// it has none, so that its name resolves either way), one per network alias, and with
// --expose-ports one for its published ports.
func (c *converter) kubeServices(s spec.Service) {
	name := c.svcName[s.Name]
	ports := c.svcPorts[s.Name]
	mk := func(n string) *corev1.Service {
		svc := &corev1.Service{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
			ObjectMeta: c.meta(n, map[string]string{labelService: name}),
			Spec:       corev1.ServiceSpec{Selector: c.selector(s.Name)},
		}
		if len(ports) > 0 {
			svc.Spec.Type = corev1.ServiceTypeClusterIP
			svc.Spec.Ports = append([]corev1.ServicePort(nil), ports...)
		} else {
			svc.Spec.ClusterIP = corev1.ClusterIPNone
		}
		return svc
	}
	c.add("Service", name, mk(name))

	// Aliases: network aliases of s and link aliases other services give it.
	aliases := map[string]string{} // alias -> compose key
	for _, net := range sortedKeys(s.Networks) {
		for i, a := range s.Networks[net].Aliases {
			aliases[a] = fmt.Sprintf("networks.%s.aliases[%d]", net, i)
		}
	}
	for _, o := range c.p.Services {
		for i, l := range o.Links {
			target, alias, ok := strings.Cut(l, ":")
			if ok && target == s.Name {
				if _, seen := aliases[alias]; !seen {
					aliases[alias] = fmt.Sprintf("(links[%d] of %s)", i, o.Name)
				}
			}
		}
	}
	for _, a := range sortedKeys(aliases) {
		if a == s.Name || a == name {
			continue
		}
		if !isDNSLabel(a) {
			c.warn(s.Name, aliases[a], "alias %q is not a valid Service name; not mapped", a)
			continue
		}
		if owner, taken := c.names[a]; taken {
			c.warn(s.Name, aliases[a], "alias %q is already the name of %q; not mapped", a, owner)
			continue
		}
		c.names[a] = s.Name
		c.add("Service", a, mk(a))
	}

	if c.opt.ExposePorts == ExposeNone {
		return
	}
	pub := &corev1.Service{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: c.meta(dnsLabel(name+"-published"), map[string]string{labelService: name}),
		Spec:       corev1.ServiceSpec{Type: corev1.ServiceType(c.opt.ExposePorts), Selector: c.selector(s.Name)},
	}
	seen := map[string]bool{}
	for i, pt := range s.Ports {
		key := fmt.Sprintf("ports[%d]", i)
		proto := corev1.Protocol(strings.ToUpper(pt.Protocol))
		if proto == "" {
			proto = corev1.ProtocolTCP
		}
		target := int32(pt.Target)
		published := target
		if pt.Published != "" {
			first, _, isRange := strings.Cut(pt.Published, "-")
			n, err := strconv.ParseUint(first, 10, 16)
			if err != nil {
				c.warn(s.Name, key, "published port %q is not a number; not exposed", pt.Published)
				continue
			}
			if isRange {
				c.warn(s.Name, key, "published range %s: exposed on %d only", pt.Published, n)
			}
			published = int32(n)
		}
		sp := corev1.ServicePort{Protocol: proto, TargetPort: intOrString(target)}
		if c.opt.ExposePorts == ExposeLoadBalancer {
			sp.Port = published
		} else {
			sp.Port = target
			if pt.Published != "" {
				if published >= 30000 && published <= 32767 {
					sp.NodePort = published
				} else {
					c.warn(s.Name, key, "published port %d is outside the node port range 30000-32767; Kubernetes picks the node port", published)
				}
			}
		}
		sp.Name = portName(string(proto), sp.Port)
		if seen[sp.Name] {
			continue
		}
		seen[sp.Name] = true
		pub.Spec.Ports = append(pub.Spec.Ports, sp)
	}
	if len(pub.Spec.Ports) > 0 {
		c.add("Service", pub.Name, pub)
	}
}

// claim builds the PersistentVolumeClaim of volume key under the given object name.
func (c *converter) claim(key, name string, many bool) corev1.PersistentVolumeClaim {
	vol := c.p.Volumes[key]
	size := c.opt.VolumeSize
	if v, ok := vol.Labels[LabelVolumeSize]; ok {
		if _, err := parseQuantity(v); err == nil {
			size = v
		} else {
			c.warn("", "volumes."+key+".labels."+LabelVolumeSize, "%q is not a size like 10Gi; using %s", v, size)
		}
	}
	mode := corev1.ReadWriteOnce
	if many {
		mode = corev1.ReadWriteMany
	}
	pvc := corev1.PersistentVolumeClaim{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "PersistentVolumeClaim"},
		ObjectMeta: c.meta(name, nil),
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes: []corev1.PersistentVolumeAccessMode{mode},
			Resources: corev1.VolumeResourceRequirements{
				Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse(size)},
			},
		},
	}
	for _, k := range sortedKeys(vol.Labels) {
		if k == LabelVolumeSize || k == LabelStorageClass {
			continue
		}
		if !isQualifiedName(k) {
			c.warn("", "volumes."+key+".labels."+k, "not a valid Kubernetes annotation key; dropped")
			continue
		}
		if pvc.Annotations == nil {
			pvc.Annotations = map[string]string{}
		}
		pvc.Annotations[k] = vol.Labels[k]
	}
	if sc, ok := vol.Labels[LabelStorageClass]; ok {
		pvc.Spec.StorageClassName = &sc
	}
	return pvc
}

// claims emits the PersistentVolumeClaims of named volumes mounted by Deployments and Jobs.
func (c *converter) claims() {
	for _, key := range sortedKeys(c.volUsers) {
		vol := c.p.Volumes[key]
		if vol.External {
			c.note("", "volumes."+key, "external volume: PersistentVolumeClaim %q must exist", dnsLabel(vol.Name))
			continue
		}
		if vol.Driver != "" && vol.Driver != "local" {
			c.warn("", "volumes."+key+".driver", "%q: the claim's storage class decides the driver", vol.Driver)
		}
		if len(vol.DriverOpts) > 0 {
			c.warn("", "volumes."+key+".driver_opts", "driver options are not mapped")
		}
		var shared []string
		for _, u := range c.volUsers[key] {
			if c.svcKind[u] != kindStatefulSet {
				shared = append(shared, u)
			}
		}
		if len(shared) == 0 {
			continue
		}
		many := len(shared) > 1
		if many {
			c.warn("", "volumes."+key, "mounted by %s: the claim asks for ReadWriteMany, which the storage class must support", strings.Join(shared, ", "))
		}
		pvc := c.claim(key, dnsLabel(key), many)
		c.add("PersistentVolumeClaim", pvc.Name, &pvc)
	}
}

// fileObjects emits a Secret per referenced secret and a ConfigMap per referenced config.
func (c *converter) fileObjects() error {
	for _, key := range sortedKeys(c.secrets) {
		obj := c.p.Secrets[key]
		if obj.External {
			c.note("", "secrets."+key, "external secret: Secret %q must exist with key %q", dnsLabel(obj.Name), fileKey(key))
			continue
		}
		data, ok, err := c.content("secrets."+key, obj)
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		sec := &corev1.Secret{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
			ObjectMeta: c.meta(dnsLabel(key), nil),
			Type:       corev1.SecretTypeOpaque,
			Data:       map[string][]byte{fileKey(key): data},
		}
		c.add("Secret", sec.Name, sec)
	}
	for _, key := range sortedKeys(c.configs) {
		obj := c.p.Configs[key]
		if obj.External {
			c.note("", "configs."+key, "external config: ConfigMap %q must exist with key %q", dnsLabel(obj.Name), fileKey(key))
			continue
		}
		data, ok, err := c.content("configs."+key, obj)
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		cm := &corev1.ConfigMap{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
			ObjectMeta: c.meta(dnsLabel(key), nil),
		}
		if utf8.Valid(data) {
			cm.Data = map[string]string{fileKey(key): string(data)}
		} else {
			cm.BinaryData = map[string][]byte{fileKey(key): data}
		}
		c.add("ConfigMap", cm.Name, cm)
	}
	return nil
}

func (c *converter) content(key string, obj spec.FileObject) ([]byte, bool, error) {
	switch {
	case obj.Content != "":
		return []byte(obj.Content), true, nil
	case obj.File != "":
		if c.files == nil {
			return nil, false, fmt.Errorf("%s: no way to read %s: %w", key, obj.File, ErrInvalid)
		}
		b, err := c.files.ReadFile(obj.File)
		if err != nil {
			return nil, false, fmt.Errorf("%s: read %s: %w", key, obj.File, err)
		}
		return b, true, nil
	case obj.Environment != "":
		c.warn("", key, "comes from the environment variable %s, whose value is not part of the project; create it yourself", obj.Environment)
		return nil, false, nil
	default:
		c.warn("", key, "has no content; not created")
		return nil, false, nil
	}
}

// networkPolicies lets pods talk only to pods that share one of their networks; pods on
// internal networks only reach those pods and DNS.
func (c *converter) networkPolicies() {
	used := map[string]bool{}
	for _, s := range c.p.Services {
		if s.NetworkMode == "host" || s.NetworkMode == "none" {
			continue
		}
		for net := range s.Networks {
			used[net] = true
		}
	}
	project := labelValue(c.p.Name)
	for _, net := range sortedKeys(used) {
		n := c.p.Networks[net]
		members := &metav1.LabelSelector{MatchLabels: map[string]string{
			labelProject:      project,
			networkLabel(net): "true",
		}}
		if n.External {
			c.warn("", "networks."+net, "external network: only this project's pods are let in")
		}
		if len(n.DriverOpts) > 0 {
			c.warn("", "networks."+net+".driver_opts", "driver options are not mapped")
		}
		if len(n.IPAM) > 0 {
			c.warn("", "networks."+net+".ipam", "pod addresses come from the cluster; not mapped")
		}
		np := &networkingv1.NetworkPolicy{
			TypeMeta:   metav1.TypeMeta{APIVersion: "networking.k8s.io/v1", Kind: "NetworkPolicy"},
			ObjectMeta: c.meta("network-"+dnsLabel(net), nil),
			Spec: networkingv1.NetworkPolicySpec{
				PodSelector: *members,
				PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress},
				Ingress:     []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{{PodSelector: members}}}},
			},
		}
		if n.Internal {
			udp, tcp := corev1.ProtocolUDP, corev1.ProtocolTCP
			dns := intOrString(53)
			np.Spec.Egress = []networkingv1.NetworkPolicyEgressRule{
				{To: []networkingv1.NetworkPolicyPeer{{PodSelector: members}}},
				{Ports: []networkingv1.NetworkPolicyPort{{Protocol: &udp, Port: &dns}, {Protocol: &tcp, Port: &dns}}},
			}
		} else {
			np.Spec.Egress = []networkingv1.NetworkPolicyEgressRule{{}}
		}
		c.add("NetworkPolicy", np.Name, np)
	}
	if c.opt.ExposePorts == ExposeNone {
		return
	}
	for _, s := range c.p.Services {
		var ports []networkingv1.NetworkPolicyPort
		seen := map[string]bool{}
		for _, pt := range s.Ports {
			proto := corev1.Protocol(strings.ToUpper(pt.Protocol))
			if proto == "" {
				proto = corev1.ProtocolTCP
			}
			k := portName(string(proto), int32(pt.Target))
			if seen[k] {
				continue
			}
			seen[k] = true
			port := intOrString(int32(pt.Target))
			ports = append(ports, networkingv1.NetworkPolicyPort{Protocol: &proto, Port: &port})
		}
		if len(ports) == 0 || s.NetworkMode == "host" || s.NetworkMode == "none" {
			continue
		}
		name := c.svcName[s.Name]
		np := &networkingv1.NetworkPolicy{
			TypeMeta:   metav1.TypeMeta{APIVersion: "networking.k8s.io/v1", Kind: "NetworkPolicy"},
			ObjectMeta: c.meta(dnsLabel(name+"-published"), map[string]string{labelService: name}),
			Spec: networkingv1.NetworkPolicySpec{
				PodSelector: metav1.LabelSelector{MatchLabels: c.selector(s.Name)},
				PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
				Ingress:     []networkingv1.NetworkPolicyIngressRule{{Ports: ports}},
			},
		}
		c.add("NetworkPolicy", np.Name, np)
	}
}

func (c *converter) waiterName() string { return dnsLabel(c.p.Name + "-job-waiter") }

// waitRBAC lets the init containers that wait for Jobs read them.
func (c *converter) waitRBAC() {
	name := c.waiterName()
	c.add("ServiceAccount", name, &corev1.ServiceAccount{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ServiceAccount"},
		ObjectMeta: c.meta(name, nil),
	})
	c.add("Role", name, &rbacv1.Role{
		TypeMeta:   metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "Role"},
		ObjectMeta: c.meta(name, nil),
		Rules: []rbacv1.PolicyRule{{
			APIGroups: []string{"batch"},
			Resources: []string{"jobs"},
			Verbs:     []string{"get", "list", "watch"},
		}},
	})
	c.add("RoleBinding", name, &rbacv1.RoleBinding{
		TypeMeta:   metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "RoleBinding"},
		ObjectMeta: c.meta(name, nil),
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: name, Namespace: c.opt.Namespace}},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: name},
	})
}
