package main

// Users and privileges: besides the administrator (`vmbkp`, every
// privilege), the lab has users whose role holds a set of privileges. A call
// that needs a privilege the caller's role lacks answers NoPermission, and
// /folder answers 403, as vCenter does. The privilege each method needs is
// the "Required privileges" of the vSphere API reference (see README.md).

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/types"
)

// Every vSphere role holds these (the system-defined privileges of the
// vSphere Security guide, "Defined Privileges": System.Anonymous, System.View,
// System.Read), so the lab grants them to every user.
var systemPrivileges = []string{"System.Anonymous", "System.View", "System.Read"}

// restrictedUser is the user the startup line names beside the
// administrator: a read-only role, until the control endpoint gives it more.
const restrictedUser = "vmbkp-restricted"

type labUserAccount struct {
	name, password string
	privileges     map[string]bool
}

type users struct {
	mu        sync.Mutex
	byName    map[string]*labUserAccount
	bySession map[string]*labUserAccount // sessions of users other than the administrator
}

// set creates or replaces a user with the given privileges (plus the system ones).
func (u *users) set(name, password string, privileges []string) *labUserAccount {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.byName == nil {
		u.byName = map[string]*labUserAccount{}
		u.bySession = map[string]*labUserAccount{}
	}
	acct := &labUserAccount{name: name, password: password, privileges: map[string]bool{}}
	for _, p := range append(append([]string{}, systemPrivileges...), privileges...) {
		if p != "" {
			acct.privileges[p] = true
		}
	}
	if old := u.byName[name]; old != nil {
		// Live sessions of the user get the new role at once, as a changed role does on vCenter.
		for k, a := range u.bySession {
			if a == old {
				u.bySession[k] = acct
			}
		}
	}
	u.byName[name] = acct
	return acct
}

func (u *users) lookup(name string) *labUserAccount {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.byName[name]
}

func (u *users) bind(session string, acct *labUserAccount) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.bySession[session] = acct
}

// has says whether the session's user holds privilege; the administrator holds all.
func (u *users) has(session, privilege string) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	acct := u.bySession[session]
	return acct == nil || acct.privileges[privilege]
}

func (a *labUserAccount) list() []string {
	var out []string
	for p := range a.privileges {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// loginOf reads userName and password of a Login request.
func loginOf(body []byte) (user, password string) {
	f := leafTexts(body)
	return first(f["userName"]), first(f["password"])
}

func first(xs []string) string {
	if len(xs) == 0 {
		return ""
	}
	return xs[0]
}

// leafTexts maps the local name of every element of a SOAP body to the
// texts it holds, in order (for the few parameters the lab checks).
func leafTexts(body []byte) map[string][]string {
	out := map[string][]string{}
	dec := xml.NewDecoder(bytes.NewReader(body))
	var stack []string
	var text strings.Builder
	for {
		tok, err := dec.Token()
		if err != nil {
			return out
		}
		switch t := tok.(type) {
		case xml.StartElement:
			stack = append(stack, t.Name.Local)
			text.Reset()
		case xml.CharData:
			text.Write(t)
		case xml.EndElement:
			if len(stack) > 0 {
				out[stack[len(stack)-1]] = append(out[stack[len(stack)-1]], strings.TrimSpace(text.String()))
				stack = stack[:len(stack)-1]
			}
			text.Reset()
		}
	}
}

// adminLogin is a Login of the administrator, which the simulator accepts:
// a lab user's login is passed on as this, and the lab remembers whose
// session it is.
func adminLogin(password string) []byte {
	var p bytes.Buffer
	_ = xml.EscapeText(&p, []byte(password))
	return []byte(`<?xml version="1.0" encoding="UTF-8"?>` +
		`<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body>` +
		`<Login xmlns="urn:vim25"><_this type="SessionManager">SessionManager</_this>` +
		`<userName>` + labUser + `</userName><password>` + p.String() + `</password></Login>` +
		`</soapenv:Body></soapenv:Envelope>`)
}

// need is a privilege a call needs, on the entity it is checked on.
type need struct {
	privilege string
	obj       types.ManagedObjectReference
}

// privilegesFor lists what a call needs beyond the system privileges.
// Methods not listed need none in the lab (see "Not modelled").
func (lab *Lab) privilegesFor(method, thisType, thisValue string, body []byte) []need {
	this := types.ManagedObjectReference{Type: thisType, Value: thisValue}
	on := func(p string) []need { return []need{{p, this}} }
	switch method {
	case "CreateSnapshot_Task":
		return on("VirtualMachine.State.CreateSnapshot")
	case "RemoveSnapshot_Task":
		return []need{{"VirtualMachine.State.RemoveSnapshot", lab.vmOfSnapshot(this)}}
	case "RemoveAllSnapshots_Task", "ConsolidateVMDisks_Task":
		return on("VirtualMachine.State.RemoveSnapshot")
	case "RenameSnapshot":
		return []need{{"VirtualMachine.State.RenameSnapshot", lab.vmOfSnapshot(this)}}
	case "RevertToSnapshot_Task":
		return []need{{"VirtualMachine.State.RevertToSnapshot", lab.vmOfSnapshot(this)}}
	case "RevertToCurrentSnapshot_Task":
		return on("VirtualMachine.State.RevertToSnapshot")
	case "QueryChangedDiskAreas":
		return on("VirtualMachine.Provisioning.DiskRandomRead")
	case "PowerOnVM_Task":
		return on("VirtualMachine.Interact.PowerOn")
	case "PowerOffVM_Task":
		return on("VirtualMachine.Interact.PowerOff")
	case "Destroy_Task":
		if thisType == "VirtualMachine" {
			return on("VirtualMachine.Inventory.Delete")
		}
	case "ReconfigVM_Task":
		return reconfigPrivileges(this, leafTexts(body))
	case "CreateVM_Task":
		return lab.createVMPrivileges(this, leafTexts(body))
	}
	return nil
}

// reconfigPrivileges: ReconfigVM_Task's privileges are "dynamic", one per
// part of the spec (vSphere Security guide, "Virtual Machine Configuration
// Privileges").
func reconfigPrivileges(vm types.ManagedObjectReference, f map[string][]string) []need {
	var out []need
	if f["changeTrackingEnabled"] != nil {
		out = append(out, need{"VirtualMachine.Config.ChangeTracking", vm})
	}
	if f["extraConfig"] != nil {
		out = append(out, need{"VirtualMachine.Config.AdvancedConfig", vm})
	}
	if f["capacityInKB"] != nil || f["capacityInBytes"] != nil {
		out = append(out, need{"VirtualMachine.Config.DiskExtend", vm})
	}
	return out
}

// createVMPrivileges: VirtualMachine.Inventory.Create on the folder, and,
// as the API reference's CreateVM_Task says, Resource.AssignVMToPool on the
// pool, Datastore.AllocateSpace on the datastore, VirtualMachine.Config.AddNewDisk
// for a new disk and Network.Assign on each network.
func (lab *Lab) createVMPrivileges(folder types.ManagedObjectReference, f map[string][]string) []need {
	out := []need{{"VirtualMachine.Inventory.Create", folder}}
	if pool := first(f["pool"]); pool != "" {
		out = append(out, need{"Resource.AssignVMToPool", types.ManagedObjectReference{Type: "ResourcePool", Value: pool}})
	}
	out = append(out, need{"Datastore.AllocateSpace", lab.dsRef})
	for _, op := range f["fileOperation"] {
		if op == "create" {
			out = append(out, need{"VirtualMachine.Config.AddNewDisk", folder})
			break
		}
	}
	for _, name := range f["deviceName"] {
		for _, e := range simulator.Map.All("Network") {
			if e.Entity().Name == name {
				out = append(out, need{"Network.Assign", e.Reference()})
			}
		}
	}
	return out
}

// vmOfSnapshot: privileges are held on entities, and a snapshot is not one;
// its VM's are checked.
func (lab *Lab) vmOfSnapshot(ref types.ManagedObjectReference) types.ManagedObjectReference {
	if s, ok := simulator.Map.Get(ref).(*LabSnapshot); ok && s.vm != nil {
		return s.vm.Self
	}
	return ref
}

// denied is the first privilege of the call the session's user lacks.
func (lab *Lab) denied(session, method, thisType, thisValue string, body []byte) (need, bool) {
	for _, n := range lab.privilegesFor(method, thisType, thisValue, body) {
		if !lab.users.has(session, n.privilege) {
			return n, true
		}
	}
	return need{}, false
}

// writeNoPermission answers like vCenter for a call the user may not make.
func writeNoPermission(w http.ResponseWriter, n need) {
	var t, v, p bytes.Buffer
	_ = xml.EscapeText(&t, []byte(n.obj.Type))
	_ = xml.EscapeText(&v, []byte(n.obj.Value))
	_ = xml.EscapeText(&p, []byte(n.privilege))
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	w.WriteHeader(http.StatusInternalServerError)
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenc="http://schemas.xmlsoap.org/soap/encoding/" xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
<soapenv:Body>
<soapenv:Fault><faultcode>ServerFaultCode</faultcode><faultstring>Permission to perform this operation was denied.</faultstring><detail><NoPermissionFault xmlns="urn:vim25" xsi:type="NoPermission"><object type="%s">%s</object><privilegeId>%s</privilegeId></NoPermissionFault></detail></soapenv:Fault>
</soapenv:Body>
</soapenv:Envelope>
`, t.String(), v.String(), p.String())
}

// folderPrivileges: HTTP access to a datastore file needs Datastore.Browse
// and Datastore.FileManagement on the datastore (vSphere Web Services SDK
// Programming Guide, "Privilege Requirements for HTTP Access").
var folderPrivileges = []string{"Datastore.Browse", "Datastore.FileManagement"}

// folderDenied answers 403 when the session's user may not access datastore
// files; vCenter's answer does not say which privilege is missing.
func (lab *Lab) folderDenied(w http.ResponseWriter, r *http.Request) bool {
	for _, p := range folderPrivileges {
		if !lab.users.has(sessionCookie(r), p) {
			if r.Method == http.MethodPut {
				_, _ = io.Copy(io.Discard, r.Body) // answered after the body, like every refused upload
			}
			http.Error(w, "Forbidden", http.StatusForbidden)
			return true
		}
	}
	return false
}

// Control routes of the lab's users.
func userRoutes() []route {
	return []route{
		{"POST", "/users/{name}", "?privileges=A,B,…[&password=P]: create or replace a lab user whose role holds those privileges (and System.Anonymous, System.View, System.Read) → {user, password, privileges}", setUser},
	}
}

func setUser(lab *Lab, w http.ResponseWriter, r *http.Request, p params) {
	name := p["name"]
	if name == labUser {
		fail(w, http.StatusBadRequest, "%s is the administrator; its role cannot change", labUser)
		return
	}
	password := r.URL.Query().Get("password")
	if password == "" {
		password = randomPassword()
	}
	var privileges []string
	for _, x := range strings.Split(r.URL.Query().Get("privileges"), ",") {
		if x = strings.TrimSpace(x); x != "" {
			privileges = append(privileges, x)
		}
	}
	acct := lab.users.set(name, password, privileges)
	reply(w, map[string]interface{}{"user": acct.name, "password": acct.password, "privileges": acct.list()})
}
