package spec

import (
	"context"
	"fmt"
	"testing"
	"time"
)

func TestZZScale(t *testing.T) {
	for _, n := range []int{250, 500, 1000} {
		f := writeBigProject(t, n)
		start := time.Now()
		if _, err := Load(context.Background(), Options{Files: []string{f}, Environ: []string{}}); err != nil {
			t.Fatal(err)
		}
		fmt.Println(n, time.Since(start))
	}
}
