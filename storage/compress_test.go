package storage

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

func TestImportGzip(t *testing.T) {
	data := mkTar(t, tarEntry{name: "z", body: "zipped"})
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(data)
	zw.Close()
	s := openStore(t)
	img, err := s.Import(context.Background(), &gz, ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if img.Layers[0] != digestOf(data) {
		t.Errorf("diff ID %s, want the uncompressed digest %s", img.Layers[0], digestOf(data))
	}
}

func TestIngestZstdAndGzipLayers(t *testing.T) {
	layer1 := mkTar(t, tarEntry{name: "one", body: "1"})
	layer2 := mkTar(t, tarEntry{name: "two", body: "2"})
	var zs, gz bytes.Buffer
	zw, _ := zstd.NewWriter(&zs)
	zw.Write(layer1)
	zw.Close()
	gw := gzip.NewWriter(&gz)
	gw.Write(layer2)
	gw.Close()
	blobs := [][]byte{zs.Bytes(), gz.Bytes()}
	cf := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["` + digestOf(layer1) + `","` + digestOf(layer2) + `"]},"config":{}}`)
	s := openStore(t)
	id, err := s.ingest(context.Background(), imageSource{config: cf,
		layers: []v1Descriptor{
			{MediaType: types.OCILayerZStd, Size: int64(zs.Len()), Digest: mustHash(t, digestOf(zs.Bytes()))},
			{MediaType: types.OCILayer, Size: int64(gz.Len()), Digest: mustHash(t, digestOf(gz.Bytes()))},
		},
		open: func(_ context.Context, i int) (io.ReadCloser, error) {
			return nopCloser(bytes.NewReader(blobs[i])), nil
		},
	}, ingestOptions{unpack: true})
	if err != nil {
		t.Fatal(err)
	}
	img, err := s.Resolve(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	for i, n := range []string{"one", "two"} {
		if _, err := os.Stat(filepath.Join(s.LayerPath(img.ChainIDs[i]), n)); err != nil {
			t.Errorf("layer %d: %v", i, err)
		}
	}
	// Blobs are kept as received (compressed) so save/push reproduce the same digests.
	if !s.hasBlob(digestOf(zs.Bytes())) || !s.hasBlob(digestOf(gz.Bytes())) {
		t.Errorf("compressed blobs not stored as-is")
	}
}
