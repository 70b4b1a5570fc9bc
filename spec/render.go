package spec

import (
	"bytes"
	"context"
	"fmt"
)

// Render prints the normalized project like `docker compose config`: format "yaml" or "json".
// The structure is compose-go's normalized model, as Compose prints it: env_file entries are
// merged into environment, paths are absolute, literal '$' are escaped as '$$'. The output
// is stable: keys are sorted.
func Render(ctx context.Context, opt Options, format string) ([]byte, error) {
	if format == "" {
		format = "yaml"
	}
	if format != "yaml" && format != "json" {
		return nil, &Error{Path: "--format", Msg: fmt.Sprintf("unsupported format %q", format),
			Hint: `use --format yaml or --format json`, Err: ErrInvalid}
	}
	cp, err := loadCompose(ctx, opt, true)
	if err != nil {
		return nil, err
	}
	// The berth model is stricter than compose-go's: convert to apply the same checks as Load.
	if _, err := convertProject(cp); err != nil {
		return nil, err
	}
	var out []byte
	switch format {
	case "json":
		out, err = cp.MarshalJSON()
	default:
		out, err = cp.MarshalYAML()
	}
	if err != nil {
		return nil, fmt.Errorf("spec: render %s: %w", format, err)
	}
	// As Compose does, so that the output is itself a valid compose file.
	return bytes.ReplaceAll(out, []byte("$"), []byte("$$")), nil
}
