package main

// --datastore-kind vsan: a datastore whose disks have no extent files, as on
// vSAN (and vVols): a disk's descriptor names a storage object
// (`RW <sectors> VMFS "vsan://<uuid>"`, `VSANSPARSE` for deltas) and
// `/folder` has no `-flat.vmdk` (or delta extent) to serve or replace: GET and
// PUT answer 404. Disks are then read through export leases (nfc.go). The
// lab keeps its extent files on its own disk, out of /folder's sight.

import (
	"fmt"
	"strings"
)

var vsanDatastore bool

// vsanExtent is the descriptor's extent type and name for layer l on vSAN.
func vsanExtent(l *layer) (string, string) {
	kind := "VMFS"
	if !l.flat {
		kind = "VSANSPARSE"
	}
	return kind, fmt.Sprintf("vsan://%s", vsanObjectID(l))
}

// vsanObjectID is a stable per-layer object id in vSAN's form (hex UUID).
func vsanObjectID(l *layer) string {
	c := l.contentID + "00000000000000000000000000000000"
	return fmt.Sprintf("%s-%s-%s-%s-%s", c[0:8], c[8:12], c[12:16], c[16:20], c[20:32])
}

// isDescriptorFile says whether a /folder path names a disk's text descriptor.
func isDescriptorFile(rel string) bool {
	return strings.HasSuffix(rel, ".vmdk") && !isExtentFile(rel)
}

// isExtentFile says whether a /folder path names a disk's extent file.
func isExtentFile(rel string) bool {
	return strings.HasSuffix(rel, "-flat.vmdk") || strings.HasSuffix(rel, "-sesparse.vmdk")
}
