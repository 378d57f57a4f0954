package main

// A disk as a streamOptimized VMDK, the format in which vSphere's export
// leases deliver disks (VMware, "Virtual Disk Format 5.0", stream-optimized
// compressed sparse extents): a sparse header with the compressed-grain and
// marker flags, an embedded descriptor, then each grain that holds data as a
// marker (LBA in sectors, compressed size) followed by its zlib-deflated bytes,
// padded to a sector, in increasing LBA order; an end-of-stream marker closes
// it. Grains that read as zeros are not sent. The lab writes no grain tables,
// grain directory or footer (a streaming reader needs none; a reader that
// seeks to the footer cannot use the lab's streams).

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

const (
	sparseMagic       = 0x564d444b // "KDMV"
	streamGrainSector = grainSize / sectorSize
)

// streamHeader is the 512-byte SparseExtentHeader of a stream.
func streamHeader(capacity int64, descSectors int64) []byte {
	h := make([]byte, sectorSize)
	le := binary.LittleEndian
	le.PutUint32(h[0:], sparseMagic)
	le.PutUint32(h[4:], 3)                            // version
	le.PutUint32(h[8:], 1|1<<16|1<<17)                // newline test valid, compressed grains, markers
	le.PutUint64(h[12:], uint64(capacity/sectorSize)) // capacity in sectors
	le.PutUint64(h[20:], streamGrainSector)           // grain size in sectors
	le.PutUint64(h[28:], 1)                           // descriptor offset
	le.PutUint64(h[36:], uint64(descSectors))         // descriptor size
	le.PutUint32(h[44:], 512)                         // grain table entries
	le.PutUint64(h[56:], ^uint64(0))                  // GD_AT_END: the grain directory would follow the grains
	le.PutUint64(h[64:], uint64(1+descSectors))       // overhead: where the grains start
	h[73], h[74], h[75], h[76] = '\n', ' ', '\r', '\n'
	le.PutUint16(h[77:], 1) // deflate
	return h
}

func padSector(b []byte) []byte {
	if r := len(b) % sectorSize; r != 0 {
		b = append(b, make([]byte, sectorSize-r)...)
	}
	return b
}

// writeStreamVMDK writes the view of d through top; it stops with an error
// as soon as live() says the lease ended.
func writeStreamVMDK(w io.Writer, d *disk, top *layer, live func() bool) error {
	desc := fmt.Sprintf("# Disk DescriptorFile\nversion=1\nCID=%08x\nparentCID=ffffffff\ncreateType=\"streamOptimized\"\n\n"+
		"# Extent description\nRW %d SPARSE \"disk.vmdk\"\n\n# The Disk Data Base\n#DDB\n\nddb.adapterType = \"lsilogic\"\n"+
		"ddb.virtualHWVersion = \"13\"\n", top.cid, d.capacity/sectorSize)
	descBytes := padSector([]byte(desc))
	if _, err := w.Write(append(streamHeader(d.capacity, int64(len(descBytes)/sectorSize)), descBytes...)); err != nil {
		return err
	}
	buf := make([]byte, grainSize)
	var z bytes.Buffer
	for g := int64(0); g < d.grains(); g++ {
		if !top.allocated(g) {
			continue
		}
		if !live() {
			return errors.New("the lease ended during the transfer")
		}
		n := d.grainLen(g)
		if err := top.readGrain(g, 0, buf[:n]); err != nil {
			return err
		}
		if allZero(buf[:n]) {
			continue
		}
		z.Reset()
		z.Write(make([]byte, 12)) // marker: LBA, compressed size
		zw := zlib.NewWriter(&z)
		if _, err := zw.Write(buf[:n]); err != nil {
			return err
		}
		if err := zw.Close(); err != nil {
			return err
		}
		m := z.Bytes()
		binary.LittleEndian.PutUint64(m[0:], uint64(g*streamGrainSector))
		binary.LittleEndian.PutUint32(m[8:], uint32(len(m)-12))
		if _, err := w.Write(padSector(m)); err != nil {
			return err
		}
	}
	_, err := w.Write(make([]byte, sectorSize)) // end-of-stream marker (type 0)
	return err
}
