// vmbkp-lab is a small vCenter for vmbkp's tests: govmomi's simulator, with
// VMs whose disks are real files on a real datastore directory, snapshots
// that freeze them, Changed Block Tracking, and a control endpoint to play
// the guest and inject faults. See README.md.
package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vmware/govmomi/find"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/types"
)

const (
	labUser       = "vmbkp"
	datacenter    = "DC0"
	datastoreName = "LocalDS_0"
	backupNetwork = "backup-net" // a second network, beside the simulator's "VM Network"
	restoreFolder = "restored"   // DC0/vm/restored
)

type options struct {
	vms, disks, nics  int
	diskSize, cbtPage int64
	dir               string
	port, controlPort int
	firmware          string
	pcPage            int64
	datastoreKind     string
	nfcLeaseTimeout   int
}

// sizeFlag accepts bytes with an optional K, M or G (binary) suffix.
type sizeFlag struct{ v *int64 }

func (s sizeFlag) String() string {
	if s.v == nil {
		return ""
	}
	return strconv.FormatInt(*s.v, 10)
}

func (s sizeFlag) Set(text string) error {
	mult := int64(1)
	switch strings.ToUpper(text[len(text)-1:]) {
	case "K":
		mult = 1 << 10
	case "M":
		mult = 1 << 20
	case "G":
		mult = 1 << 30
	}
	if mult > 1 {
		text = text[:len(text)-1]
	}
	n, err := strconv.ParseInt(text, 10, 64)
	if err != nil {
		return err
	}
	*s.v = n * mult
	return nil
}

func parseFlags(args []string) (options, error) {
	o := options{diskSize: 64 << 20, cbtPage: 16 << 20, firmware: "bios"}
	fs := flag.NewFlagSet("vmbkp-lab", flag.ContinueOnError)
	fs.IntVar(&o.vms, "vms", 2, "number of VMs, named lab-vm-1 … lab-vm-N")
	fs.IntVar(&o.disks, "disks", 2, "virtual disks per VM")
	fs.Var(sizeFlag{&o.diskSize}, "disk-size", "capacity of each disk in bytes (K/M/G suffixes allowed)")
	fs.IntVar(&o.nics, "nics", 2, "VMXNET3 network adapters per VM")
	fs.StringVar(&o.dir, "dir", "", "datastore directory (default: a new temporary directory, removed on exit)")
	fs.IntVar(&o.port, "port", 0, "HTTPS port of the vCenter endpoint (0: any free port)")
	fs.IntVar(&o.controlPort, "control-port", 0, "HTTP port of the control endpoint (0: any free port)")
	fs.Var(sizeFlag{&o.cbtPage}, "cbt-page", "most bytes one QueryChangedDiskAreas call covers")
	fs.StringVar(&o.firmware, "firmware", o.firmware, "firmware of the VMs: bios or efi")
	fs.Int64Var(&o.pcPage, "pc-page", defaultPCPage, "most objects one RetrievePropertiesEx answer holds (0: no limit of the lab's)")
	fs.StringVar(&o.datastoreKind, "datastore-kind", "vmfs", "vmfs (flat extent files) or vsan (disks are objects: no -flat.vmdk file)")
	fs.IntVar(&o.nfcLeaseTimeout, "nfc-lease-timeout", 300, "seconds an export lease lives without HttpNfcLeaseProgress")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return o, err
		}
		return o, errReported // the flag package has printed it, with the usage
	}
	switch {
	case fs.NArg() > 0:
		return o, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	case o.vms < 0:
		return o, errors.New("--vms must not be negative")
	case o.disks < 0 || o.disks > maxDisks:
		return o, fmt.Errorf("--disks must be between 0 and %d", maxDisks)
	case o.nics < 0 || o.nics > maxNICs:
		return o, fmt.Errorf("--nics must be between 0 and %d", maxNICs)
	case o.diskSize <= 0 || o.diskSize%1024 != 0:
		return o, errors.New("--disk-size must be a positive multiple of 1024")
	case o.cbtPage <= 0:
		return o, errors.New("--cbt-page must be positive")
	case o.firmware != "bios" && o.firmware != "efi":
		return o, errors.New("--firmware must be bios or efi")
	case o.pcPage < 0:
		return o, errors.New("--pc-page must not be negative")
	case o.datastoreKind != "vmfs" && o.datastoreKind != "vsan":
		return o, errors.New("--datastore-kind must be vmfs or vsan")
	case o.nfcLeaseTimeout <= 0:
		return o, errors.New("--nfc-lease-timeout must be positive")
	}
	return o, nil
}

// startup is the first (and only) line the lab prints on stdout.
type startup struct {
	URL              string   `json:"url"`
	User             string   `json:"user"`
	Password         string   `json:"password"`
	Thumbprint       string   `json:"thumbprint"`
	ThumbprintSha256 string   `json:"thumbprintSha256"`
	Control          string   `json:"control"`
	Datastore        string   `json:"datastore"`
	DatastoreDir     string   `json:"datastoreDir"`
	Datacenter       string   `json:"datacenter"`
	VMs              []string `json:"vms"`
	// A second user, read-only until POST /users/NAME gives its role more (roles.go).
	RestrictedUser     string `json:"restrictedUser"`
	RestrictedPassword string `json:"restrictedPassword"`
}

var errReported = errors.New("reported")

// usageError is a bad command line: exit status 2, like the flag package.
type usageError struct{ error }

func main() {
	log.SetOutput(os.Stderr)
	err := run(os.Args[1:])
	var usage usageError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
	case errors.Is(err, errReported):
		os.Exit(2)
	case errors.As(err, &usage):
		fmt.Fprintln(os.Stderr, "vmbkp-lab:", err)
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "vmbkp-lab:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	o, err := parseFlags(args)
	switch {
	case errors.Is(err, flag.ErrHelp), errors.Is(err, errReported):
		return err
	case err != nil:
		return usageError{err}
	}

	dsDir, removeDir, err := datastoreDir(o.dir)
	if err != nil {
		return err
	}
	defer removeDir()

	// Catch signals from here on so the temporary directory is always removed.
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)

	vsanDatastore = o.datastoreKind == "vsan"
	nfcLeaseTimeout.Store(int64(time.Duration(o.nfcLeaseTimeout) * time.Second))
	lab := &Lab{dsName: datastoreName, dcName: datacenter, dsDir: dsDir, cbtPage: o.cbtPage}
	model, err := lab.build(o)
	if model != nil {
		defer model.Remove()
	}
	if lab.second != nil && o.dir == "" {
		defer os.RemoveAll(lab.second.dir)
	}
	if err != nil {
		return err
	}

	password := randomPassword()
	lab.password = password
	restricted := lab.users.set(restrictedUser, randomPassword(), nil)
	lab.installPropertyCollector(o.pcPage)
	cert, err := newCertificate()
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", o.port))
	if err != nil {
		return err
	}
	cln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", o.controlPort))
	if err != nil {
		return err
	}
	lab.httpsPort = ln.Addr().(*net.TCPAddr).Port
	sdk := &url.URL{Scheme: "https", Host: ln.Addr().String(), Path: "/sdk"}

	// The simulator's Service checks logins against Listen.User. Its own
	// NewServer is not used so the lab can put its gate in front of /sdk
	// and serve /folder itself.
	svc := model.Service
	svc.Listen = &url.URL{Scheme: sdk.Scheme, Host: sdk.Host, Path: sdk.Path, User: url.UserPassword(labUser, password)}
	svc.RegisterSDK(simulator.Map)
	simulator.Map.SessionManager().ServiceHostName = sdk.Host

	mux := http.NewServeMux()
	mux.Handle("/sdk", &sdkGate{lab: lab, next: http.HandlerFunc(svc.ServeSDK)})
	mux.HandleFunc("/sdk/vimServiceVersions.xml", svc.ServiceVersions)
	mux.HandleFunc("/folder/", lab.serveFolder)
	mux.HandleFunc(nfcPrefix, lab.serveNFC)
	tlsConfig := &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"http/1.1"}}
	srv := &http.Server{
		Handler:      mux,
		TLSConfig:    tlsConfig,
		TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){}, // HTTP/1.1 only, like vCenter's /folder
		ErrorLog:     log.New(os.Stderr, "vmbkp-lab https: ", log.LstdFlags),
	}
	go func() { _ = srv.Serve(tls.NewListener(ln, tlsConfig)) }()
	csrv := &http.Server{Handler: lab.controlHandler()}
	go func() { _ = csrv.Serve(cln) }()
	defer srv.Close()
	defer csrv.Close()

	sha1, sha256 := thumbprints(cert.Certificate[0])
	lab.sslThumbprint = sha1
	out := startup{
		URL: sdk.String(), User: labUser, Password: password, Thumbprint: sha1, ThumbprintSha256: sha256,
		Control: "http://" + cln.Addr().String(), Datastore: datastoreName, DatastoreDir: dsDir,
		Datacenter: datacenter, VMs: []string{},
		RestrictedUser: restricted.name, RestrictedPassword: restricted.password,
	}
	for _, vm := range lab.allVMs() {
		out.VMs = append(out.VMs, vm.Name)
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(out); err != nil {
		return err
	}
	log.Printf("vmbkp-lab: vCenter at %s, control at %s, datastore %s", sdk, out.Control, dsDir)

	select {
	case sig := <-stop:
		log.Printf("vmbkp-lab: %s, shutting down", sig)
	case <-parentGone():
		log.Printf("vmbkp-lab: parent process exited, shutting down")
	}
	return nil
}

// parentGone is closed when the process that started the lab exits, so a lab
// started in the background (npm run lab &) never outlives its shell or test.
func parentGone() <-chan struct{} {
	gone := make(chan struct{})
	ppid := os.Getppid()
	go func() {
		for os.Getppid() == ppid {
			time.Sleep(500 * time.Millisecond)
		}
		close(gone)
	}()
	return gone
}

// build creates the inventory: datacenter DC0 with one host, datastore
// LocalDS_0 on dsDir, and the lab VMs.
func (lab *Lab) build(o options) (*simulator.Model, error) {
	model := simulator.VPX()
	model.Datacenter, model.Host = 1, 1
	model.Cluster, model.ClusterHost, model.Pool, model.App = 0, 0, 0, 0
	model.Portgroup, model.PortgroupNSX, model.OpaqueNetwork = 0, 0, 0
	model.Datastore, model.Machine, model.Autostart = 0, 0, false
	if err := model.Create(); err != nil {
		return nil, err
	}

	ctx := context.Background()
	c, err := vim25.NewClient(ctx, model.Service) // in-process, no HTTP
	if err != nil {
		return model, err
	}
	finder := find.NewFinder(c, false)
	dc, err := finder.Datacenter(ctx, datacenter)
	if err != nil {
		return model, err
	}
	finder.SetDatacenter(dc)
	host, err := finder.DefaultHostSystem(ctx)
	if err != nil {
		return model, err
	}
	pool, err := host.ResourcePool(ctx)
	if err != nil {
		return model, err
	}
	folders, err := dc.Folders(ctx)
	if err != nil {
		return model, err
	}
	dss, err := host.ConfigManager().DatastoreSystem(ctx)
	if err != nil {
		return model, err
	}
	ds, err := dss.CreateLocalDatastore(ctx, lab.dsName, lab.dsDir)
	if err != nil {
		return model, fmt.Errorf("datastore: %w", err)
	}
	lab.dsRef = ds.Reference()
	if err := lab.addSecondDatastore(ctx, dss); err != nil {
		return model, err
	}
	lab.installAuthz()

	vo := vmOptions{disks: o.disks, nics: o.nics, diskSize: o.diskSize, firmware: o.firmware}
	for i := 1; i <= o.vms; i++ {
		vm, err := lab.createVM(ctx, c, folders.VmFolder, pool, host, fmt.Sprintf("lab-vm-%d", i), vo)
		if err != nil {
			return model, err
		}
		lab.addVM(vm)
	}

	// What restores need: a second network to map NICs to, and a folder to
	// restore into. (CreateVM_Task through /sdk makes lab VMs: see folder.go.)
	ns, err := host.ConfigManager().NetworkSystem(ctx)
	if err != nil {
		return model, err
	}
	if err := ns.AddPortGroup(ctx, types.HostPortGroupSpec{Name: backupNetwork, VswitchName: "vSwitch0", Policy: types.HostNetworkPolicy{}}); err != nil {
		return model, fmt.Errorf("network %s: %w", backupNetwork, err)
	}
	if _, err := folders.VmFolder.CreateFolder(ctx, restoreFolder); err != nil {
		return model, fmt.Errorf("folder %s: %w", restoreFolder, err)
	}
	lab.client = c
	return model, nil
}

// datastoreDir returns the absolute datastore directory and how to clean up:
// a temporary directory is removed, a given one is kept.
func datastoreDir(dir string) (string, func(), error) {
	if dir == "" {
		tmp, err := os.MkdirTemp("", "vmbkp-lab-")
		if err != nil {
			return "", nil, err
		}
		return tmp, func() { _ = os.RemoveAll(tmp) }, nil
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", nil, err
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return "", nil, err
	}
	if entries, err := os.ReadDir(abs); err != nil || len(entries) > 0 {
		return "", nil, fmt.Errorf("--dir %s must be an empty directory", abs)
	}
	return abs, func() {}, nil
}

func randomPassword() string {
	const alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789"
	b := make([]byte, 20)
	for i := range b {
		n, err := rand.Int(rand.Reader, big.NewInt(int64(len(alphabet))))
		if err != nil {
			panic(err)
		}
		b[i] = alphabet[n.Int64()]
	}
	return string(b)
}
