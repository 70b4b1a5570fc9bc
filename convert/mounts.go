package convert

import (
	"fmt"
	"path"
	"strings"

	units "github.com/docker/go-units"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/berth-dev/berth/spec"
)

// mounts maps volumes, tmpfs and shm_size. For a StatefulSet, named volumes become claim
// templates, which it returns.
func (c *converter) mounts(s spec.Service, kind string, ctr *corev1.Container, pod *corev1.PodSpec) []corev1.PersistentVolumeClaim {
	var claims []corev1.PersistentVolumeClaim
	have := map[string]bool{}
	addVolume := func(v corev1.Volume) {
		if !have[v.Name] {
			have[v.Name] = true
			pod.Volumes = append(pod.Volumes, v)
		}
	}
	for i, m := range s.Volumes {
		key := fmt.Sprintf("volumes[%d]", i)
		vm := corev1.VolumeMount{MountPath: m.Target, ReadOnly: m.ReadOnly, SubPath: m.Subpath}
		switch m.Type {
		case spec.MountVolume:
			if m.Source == "" {
				vm.Name = fmt.Sprintf("anon-%d", i)
				addVolume(corev1.Volume{Name: vm.Name, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}})
				break
			}
			vol := c.p.Volumes[m.Source]
			vm.Name = dnsLabel("vol-" + m.Source)
			claim := dnsLabel(m.Source)
			if vol.External {
				claim = dnsLabel(vol.Name)
			}
			if kind == kindStatefulSet && !vol.External {
				if !have[vm.Name] {
					have[vm.Name] = true
					claims = append(claims, c.claim(m.Source, vm.Name, false))
					c.warn(s.Name, key, "volume %q: each of the %d replicas gets its own PersistentVolumeClaim and no longer shares its data", m.Source, s.Scale)
				}
				break
			}
			addVolume(corev1.Volume{Name: vm.Name, VolumeSource: corev1.VolumeSource{
				PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: claim},
			}})
		case spec.MountBind:
			if !c.opt.AllowHostPath {
				c.warn(s.Name, key, "bind mount %s:%s has no portable Kubernetes equivalent; use configs, a volume, or --allow-hostpath", m.Source, m.Target)
				continue
			}
			vm.Name = fmt.Sprintf("bind-%d", i)
			t := corev1.HostPathDirectoryOrCreate
			if !m.CreateHostPath {
				t = corev1.HostPathUnset
			}
			addVolume(corev1.Volume{Name: vm.Name, VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: m.Source, Type: &t}}})
			c.note(s.Name, key, "hostPath %s must exist on every node the pod can run on", m.Source)
			switch m.Propagation {
			case "", "rprivate", "private":
			case "rslave", "slave":
				p := corev1.MountPropagationHostToContainer
				vm.MountPropagation = &p
			case "rshared", "shared":
				p := corev1.MountPropagationBidirectional
				if !s.Privileged {
					c.warn(s.Name, key, "shared propagation needs a privileged container in Kubernetes; mounts propagate from the host only")
					p = corev1.MountPropagationHostToContainer
				}
				vm.MountPropagation = &p
			}
			if m.SELinux != "" {
				c.warn(s.Name, key, "SELinux relabeling %q is not mapped", m.SELinux)
			}
		case spec.MountTmpfs:
			vm.Name = fmt.Sprintf("tmpfs-%d", i)
			addVolume(tmpfsVolume(vm.Name, m.TmpfsSize))
			if m.TmpfsMode != 0 {
				c.warn(s.Name, key, "tmpfs mode %o is not mapped", m.TmpfsMode)
			}
		default:
			c.warn(s.Name, key, "mount type %q is not mapped", m.Type)
			continue
		}
		ctr.VolumeMounts = append(ctr.VolumeMounts, vm)
	}
	for i, t := range s.Tmpfs {
		key := fmt.Sprintf("tmpfs[%d]", i)
		target, opts, _ := strings.Cut(t, ":")
		var size int64
		for _, o := range strings.Split(opts, ",") {
			if v, ok := strings.CutPrefix(o, "size="); ok {
				n, err := units.RAMInBytes(v)
				if err != nil {
					c.warn(s.Name, key, "size %q: %v", v, err)
					continue
				}
				size = n
			} else if o != "" {
				c.warn(s.Name, key, "tmpfs option %q is not mapped", o)
			}
		}
		name := fmt.Sprintf("tmpfs-x%d", i)
		addVolume(tmpfsVolume(name, size))
		ctr.VolumeMounts = append(ctr.VolumeMounts, corev1.VolumeMount{Name: name, MountPath: target})
	}
	if s.ShmSize > 0 {
		addVolume(tmpfsVolume("shm", s.ShmSize))
		ctr.VolumeMounts = append(ctr.VolumeMounts, corev1.VolumeMount{Name: "shm", MountPath: "/dev/shm"})
	}
	return claims
}

func tmpfsVolume(name string, size int64) corev1.Volume {
	ed := &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory}
	if size > 0 {
		q := resource.NewQuantity(size, resource.BinarySI)
		ed.SizeLimit = q
	}
	return corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{EmptyDir: ed}}
}

// fileRefs mounts the service's secrets and configs at their targets.
func (c *converter) fileRefs(s spec.Service, ctr *corev1.Container, pod *corev1.PodSpec) {
	for i, r := range s.Secrets {
		key := fmt.Sprintf("secrets[%d]", i)
		obj, ok := c.p.Secrets[r.Source]
		if !ok {
			c.warn(s.Name, key, "secret %q is not defined", r.Source)
			continue
		}
		c.secrets[r.Source] = true
		target := r.Target
		if target == "" {
			target = r.Source
		}
		if !path.IsAbs(target) {
			target = path.Join("/run/secrets", target)
		}
		name := dnsLabel("secret-" + r.Source)
		dataKey := fileKey(r.Source)
		objName := dnsLabel(r.Source)
		if obj.External {
			objName = dnsLabel(obj.Name)
		}
		item := corev1.KeyToPath{Key: dataKey, Path: dataKey, Mode: modePtr(r.Mode)}
		vol := corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
			SecretName: objName, Items: []corev1.KeyToPath{item},
		}}}
		c.mountFile(pod, ctr, vol, target, dataKey)
		if r.UID != "" || r.GID != "" {
			c.warn(s.Name, key, "uid/gid of a mounted secret are not mapped")
		}
	}
	for i, r := range s.Configs {
		key := fmt.Sprintf("configs[%d]", i)
		obj, ok := c.p.Configs[r.Source]
		if !ok {
			c.warn(s.Name, key, "config %q is not defined", r.Source)
			continue
		}
		c.configs[r.Source] = true
		target := r.Target
		if target == "" {
			target = "/" + r.Source
		}
		name := dnsLabel("config-" + r.Source)
		dataKey := fileKey(r.Source)
		objName := dnsLabel(r.Source)
		if obj.External {
			objName = dnsLabel(obj.Name)
		}
		item := corev1.KeyToPath{Key: dataKey, Path: dataKey, Mode: modePtr(r.Mode)}
		vol := corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: objName}, Items: []corev1.KeyToPath{item},
		}}}
		c.mountFile(pod, ctr, vol, target, dataKey)
		if r.UID != "" || r.GID != "" {
			c.warn(s.Name, key, "uid/gid of a mounted config are not mapped")
		}
	}
}

func (c *converter) mountFile(pod *corev1.PodSpec, ctr *corev1.Container, vol corev1.Volume, target, key string) {
	found := false
	for _, v := range pod.Volumes {
		if v.Name == vol.Name {
			found = true
		}
	}
	if !found {
		pod.Volumes = append(pod.Volumes, vol)
	}
	ctr.VolumeMounts = append(ctr.VolumeMounts, corev1.VolumeMount{Name: vol.Name, MountPath: target, SubPath: key, ReadOnly: true})
}

func modePtr(m *uint32) *int32 {
	if m == nil {
		return nil
	}
	v := int32(*m)
	return &v
}

// fileKey is the data key of a secret or config: its compose name when valid.
func fileKey(name string) string {
	if len(validation.IsConfigMapKey(name)) == 0 {
		return name
	}
	return "content"
}
