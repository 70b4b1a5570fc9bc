package planner

import "github.com/berth-dev/berth/spec"

// ContainerName is the name of replica number of service s: its container_name when set,
// otherwise "<project>-<service>-<number>", as Compose names it.
func ContainerName(project string, s spec.Service, number int) string {
	if s.ContainerName != "" {
		return s.ContainerName
	}
	return project + "-" + s.Name + "-" + itoa(number)
}
