package main

import (
	"reflect"
	"testing"

	"github.com/berth-dev/berth/spec"
)

// volumes_from, ipc, pid and userns_mode are supported: only mac_address and other logging
// drivers are reported.
func TestProjectUnsupported(t *testing.T) {
	p := &spec.Project{Services: []spec.Service{
		{Name: "a", VolumesFrom: []string{"b"}, IPC: "host", PID: "host"},
		{Name: "b", IPC: "shareable", Logging: &spec.Logging{Driver: "json-file"}},
		{Name: "c", UsernsMode: "host", MacAddress: "02:42:ac:11:00:02", Logging: &spec.Logging{Driver: "syslog"}},
	}}
	want := []string{
		`services.c.mac_address: "02:42:ac:11:00:02" is not supported by berth yet and is ignored`,
		`services.c.logging.driver: "syslog" is not supported by berth yet and is ignored`,
	}
	if got := projectUnsupported(p); !reflect.DeepEqual(got, want) {
		t.Errorf("projectUnsupported =\n%q\nwant\n%q", got, want)
	}
}
