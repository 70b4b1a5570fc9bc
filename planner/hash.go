package planner

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"

	"github.com/berth-dev/berth/spec"
)

// ServiceHash is the config hash of a service: everything that shapes its containers, minus
// scale, depends_on, profiles and build, so that scaling or rebuilding alone never recreates.
// The image's ID is compared separately.
func ServiceHash(s spec.Service) string {
	s.Scale = 0
	s.DependsOn = nil
	s.Profiles = nil
	s.Build = nil
	b, err := json.Marshal(s)
	if err != nil {
		// spec.Service holds only JSON-encodable values; a failure here is a programming error.
		panic("planner: hash service " + s.Name + ": " + err.Error())
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
