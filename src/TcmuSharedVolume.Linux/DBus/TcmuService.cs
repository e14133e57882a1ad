using System.Diagnostics;
using System.Runtime.InteropServices;
using TcmuSharedVolume.Diagnostics;
using TcmuSharedVolume.Interop;

namespace TcmuSharedVolume.Linux.DBus;

/// <summary>What the daemon plugs into the D-Bus service.</summary>
public sealed class TcmuServiceHandlers
{
    /// <summary>
    /// Validates a config string. It receives the FULL string targetcli sends,
    /// <c>sharedvol/&lt;rest&gt;</c> (docs/tcmu.md §14); strings with another prefix never reach it.
    /// </summary>
    public required Func<string, (bool Ok, string Reason)> CheckConfig { get; init; }

    /// <summary>
    /// CheckConfig for callers without CAP_SYS_ADMIN: the syntax only. It must not look at the
    /// file system — whether a path exists, is empty or is a directory is not every local user's
    /// business. Null: such callers get only the prefix check.
    /// </summary>
    public Func<string, (bool Ok, string Reason)>? CheckSyntax { get; init; }

    /// <summary>Snapshot for Admin1.GetStatusJson.</summary>
    public Func<AdminStatus>? GetStatus { get; init; }

    /// <summary>Admin1.ClearReservations once the caller confirmed: volume is a backing path or unit serial.</summary>
    public Func<string, (bool Ok, string Message)>? ClearReservations { get; init; }
}

/// <summary>
/// The daemon's face on the D-Bus system bus, as tcmu-runner shows it to targetcli
/// (docs/tcmu.md §14):
/// <list type="bullet">
/// <item>owns <c>org.kernel.TCMUService1</c>; ObjectManager at <c>/org/kernel/TCMUService1</c>;</item>
/// <item>object <c>/org/kernel/TCMUService1/sharedvol</c> with interface <c>org.kernel.TCMUService1</c>:
/// property ConfigDesc (s), CheckConfig(s) → (bs), ChangeMedium(sts) → (is);</item>
/// <item>on the same object, <c>io.github.tcmusharedvolume.Admin1</c>: GetStatusJson() → s,
/// ClearReservations(sb) → (bs) for tsvctl, both for privileged callers only (the status names
/// backing paths, initiators and reservation keys).</item>
/// </list>
/// The admin interface sits on the handler object, not on an object of its own, because
/// targetcli turns every object the ObjectManager lists into a <c>user:&lt;name&gt;</c> backstore.
/// <para>
/// Threading: sd-bus is single-threaded. Every member of this class must be called on one
/// thread — either <see cref="Run"/> on a thread of its own, or the daemon's event loop polling
/// <see cref="FileDescriptor"/> for <see cref="PollEvents"/> until <see cref="ProcessTimeout"/>
/// and then calling <see cref="ProcessPending"/> (re-read PollEvents after each call: sd-bus asks
/// for POLLOUT only while it has queued output). Stop <see cref="Run"/> before <see cref="Dispose"/>.
/// </para>
/// </summary>
public sealed unsafe class TcmuService : IDisposable
{
    public const string BusName = "org.kernel.TCMUService1";
    public const string ManagerPath = "/org/kernel/TCMUService1";
    public const string HandlerInterface = "org.kernel.TCMUService1";
    public const string AdminInterface = "io.github.tcmusharedvolume.Admin1";
    public const string Subtype = "sharedvol";
    public const string HandlerPath = ManagerPath + "/" + Subtype;

    /// <summary>Shown by <c>targetcli /backstores/user:sharedvol help create</c>.</summary>
    public const string ConfigDesc =
        "sharedvol/<absolute path>[;size=<n>[K|M|G|T]][;serial=<s>][;initiator=<iqn>][;direct=1][;discard_zeroes=1]\n" +
        "A shared volume: a sparse file or a block device (LVM LV) served to many initiators, with its\n" +
        "own SCSI-3 persistent reservation table kept by tcmu-shared-volume (not by LIO).\n" +
        "Create one backstore per initiator (per I_T nexus), all naming the same path; their\n" +
        "reservations, identity and data are shared.\n" +
        "  path       the backing file or block device, absolute.\n" +
        "  size       create the file sparse with this size if it does not exist (K, M, G, T = 1024^n).\n" +
        "  serial     unit serial (VPD 80h) of the volume, 1-64 printable ASCII; default: derived from the path.\n" +
        "  initiator  the one initiator allowed on this backstore; write ':' as %3A, since the\n" +
        "             config string may not contain ':' (e.g. iqn.2024-01.org.example%3Anode1).\n" +
        "             Without it, the initiator is taken from the LIO ACL that maps this backstore.\n" +
        "  direct     1: open a block device O_DIRECT (hw_block_size a multiple of its logical block).\n" +
        "  discard_zeroes  1: the block device reads zeroes where discarded (LBPRZ); an LVM thin LV\n" +
        "             whose pool zeroes new blocks is recognised without it.\n" +
        "  abort_timeout  seconds PREEMPT AND ABORT waits for the fenced node's commands before it\n" +
        "             fails (1-25, default 20); below the initiators' command timeout.\n" +
        "  optimized_host  ALUA: the host_id whose target port group alone is Active/Optimized, the\n" +
        "             others Active/Non-optimized (1-63); default: every group Active/Optimized.\n" +
        "Or a Ceph RBD image: sharedvol/rbd/<pool>/<image>[;ceph_conf=<path>][;ceph_id=<id>][;serial=...]\n" +
        "  ceph_conf  the cluster's ceph.conf, absolute (default: librados' search, /etc/ceph/ceph.conf).\n" +
        "  ceph_id    the Ceph client without 'client.' (default admin); its key from the keyring\n" +
        "             ceph.conf names. The image must exist (rbd create, layering only).\n" +
        "  Several hosts may serve one image with the same string, each with its own host_id: one\n" +
        "  reservation table for all, in the RADOS object tsv.pr.<image>; no SPC-2 RESERVE/RELEASE.\n" +
        "Easier: tsvctl volume create lvm:VG/NAME --size 100G --thin POOL (or rbd:POOL/IMAGE --conf PATH),\n" +
        "then tsvctl export iscsi --volume lvm:VG/NAME --target IQN --initiator IQN ...";

    private const string ChangeMediumMessage =
        "ChangeMedium is not supported by sharedvol: a shared volume's medium is fixed; " +
        "to resize, run tsvctl volume resize (or grow the backing file or LV and write dev_size on every backstore of the volume)";

    private const string ErrorFailed = "org.freedesktop.DBus.Error.Failed";

    private readonly TcmuServiceHandlers _handlers;
    private readonly NativeArena _arena = new();
    private readonly byte* _configDesc;
    private GCHandle _self;
    private nint _bus;

    private TcmuService(TcmuServiceHandlers handlers)
    {
        _handlers = handlers;
        _configDesc = _arena.Utf8(ConfigDesc);
        _self = GCHandle.Alloc(this);
    }

    /// <summary>
    /// Connects (to the system bus when <paramref name="busAddress"/> is null), exports the objects
    /// and takes the well-known name. Fails with a clear message when the name is already owned,
    /// which is the case while tcmu-runner runs: two TCMU daemons cannot share netlink (docs/tcmu.md §9).
    /// </summary>
    public static TcmuService Start(TcmuServiceHandlers handlers, string? busAddress = null)
    {
        ArgumentNullException.ThrowIfNull(handlers.CheckConfig);
        var service = new TcmuService(handlers);
        try
        {
            service.Connect(busAddress);
            return service;
        }
        catch
        {
            service.Dispose();
            throw;
        }
    }

    private void Connect(string? busAddress)
    {
        _bus = SdBus.Open(busAddress);
        var userdata = GCHandle.ToIntPtr(_self);

        // Objects first, name last: a caller activated by the name finds everything in place.
        SdBus.Check(LibSystemd.sd_bus_add_object_manager(_bus, null, ManagerPath), "add ObjectManager");
        SdBus.Check(LibSystemd.sd_bus_add_object_vtable(_bus, null, HandlerPath, HandlerInterface, BuildHandlerVtable(), userdata),
            $"export {HandlerInterface}");
        SdBus.Check(LibSystemd.sd_bus_add_object_vtable(_bus, null, HandlerPath, AdminInterface, BuildAdminVtable(), userdata),
            $"export {AdminInterface}");

        int r = LibSystemd.sd_bus_request_name(_bus, BusName, 0);
        if (r == -SdBus.EEXIST)
            throw new DBusException($"{BusName} is already owned by another process (is tcmu-runner running? stop it: both cannot serve TCMU)", SdBus.EEXIST);
        if (r == -SdBus.EACCES || r == -SdBus.EPERM)
            throw new DBusException($"not allowed to own {BusName}: run as root, with the D-Bus policy org.kernel.TCMUService1.conf installed", -r);
        SdBus.Check(r, $"cannot own {BusName}");

        r = LibSystemd.sd_bus_emit_object_added(_bus, HandlerPath);
        if (r < 0) Log.Warning($"D-Bus: InterfacesAdded for {HandlerPath} not sent: {Marshal.GetPInvokeErrorMessage(-r)}");
    }

    private SdBusVtable* BuildHandlerVtable()
    {
        var v = (SdBusVtable*)_arena.Alloc((nuint)(sizeof(SdBusVtable) * 5));
        Start(v);
        v[1].TypeAndFlags = SdBusVtable.Word(LibSystemd.SD_BUS_VTABLE_PROPERTY, LibSystemd.SD_BUS_VTABLE_PROPERTY_CONST);
        v[1].Member = _arena.Utf8("ConfigDesc");
        v[1].Signature = _arena.Utf8("s");
        v[1].PropertyGet = &OnGetConfigDesc;
        Method(&v[2], "CheckConfig", "s", "bs", ["configstr", "is_valid", "message"], &OnCheckConfig, LibSystemd.SD_BUS_VTABLE_UNPRIVILEGED);
        Method(&v[3], "ChangeMedium", "sts", "is", ["name", "size", "configstr", "ret", "message"], &OnChangeMedium, LibSystemd.SD_BUS_VTABLE_UNPRIVILEGED);
        v[4].TypeAndFlags = SdBusVtable.Word(LibSystemd.SD_BUS_VTABLE_END, 0);
        return v;
    }

    private SdBusVtable* BuildAdminVtable()
    {
        var v = (SdBusVtable*)_arena.Alloc((nuint)(sizeof(SdBusVtable) * 4));
        Start(v);
        // No UNPRIVILEGED flag on either: sd-bus itself refuses callers without CAP_SYS_ADMIN (or
        // our uid), a second fence behind the bus policy. The status reveals backing paths,
        // initiator names and reservation keys, which a local user could use to preempt.
        Method(&v[1], "GetStatusJson", "", "s", ["status"], &OnGetStatusJson, 0);
        Method(&v[2], "ClearReservations", "sb", "bs", ["volume", "confirm", "done", "message"], &OnClearReservations, 0);
        v[3].TypeAndFlags = SdBusVtable.Word(LibSystemd.SD_BUS_VTABLE_END, 0);
        return v;
    }

    private static void Start(SdBusVtable* v)
    {
        v->TypeAndFlags = SdBusVtable.Word(LibSystemd.SD_BUS_VTABLE_START, 0);
        v->StartElementSize = (nuint)sizeof(SdBusVtable);
        v->StartFeatures = LibSystemd.SD_BUS_VTABLE_PARAM_NAMES;
        v->StartVtableFormatReference = LibSystemd.VtableFormatReference;
    }

    private void Method(SdBusVtable* e, string member, string signature, string result, string[] names,
        delegate* unmanaged<nint, nint, SdBusError*, int> handler, ulong flags)
    {
        e->TypeAndFlags = SdBusVtable.Word(LibSystemd.SD_BUS_VTABLE_METHOD, flags);
        e->Member = _arena.Utf8(member);
        e->Signature = _arena.Utf8(signature);
        e->MethodResult = _arena.Utf8(result);
        e->MethodHandler = handler;
        e->MethodNames = _arena.Names(names);
    }

    /// <summary>The bus socket, to add to the daemon's epoll set.</summary>
    public int FileDescriptor => LibSystemd.sd_bus_get_fd(_bus);

    /// <summary>poll(2) events to wait for (POLLIN = EPOLLIN, POLLOUT = EPOLLOUT); changes after each <see cref="ProcessPending"/>.</summary>
    public uint PollEvents
    {
        get
        {
            int r = LibSystemd.sd_bus_get_events(_bus);
            SdBus.Check(r, "sd_bus_get_events");
            return (uint)r;
        }
    }

    /// <summary>How long the caller may sleep before calling <see cref="ProcessPending"/> again (null: until the fd is ready).</summary>
    public TimeSpan? ProcessTimeout
    {
        get
        {
            ulong deadline;
            SdBus.Check(LibSystemd.sd_bus_get_timeout(_bus, &deadline), "sd_bus_get_timeout");
            if (deadline == ulong.MaxValue) return null;
            // sd-bus deadlines are CLOCK_MONOTONIC µs; so is Stopwatch on Linux (ns ticks).
            long now = (long)(Stopwatch.GetTimestamp() / (Stopwatch.Frequency / 1_000_000));
            long left = (long)deadline - now;
            return TimeSpan.FromMicroseconds(Math.Max(0, left));
        }
    }

    /// <summary>Handles every message that is ready, without blocking. Returns true if any was.</summary>
    public bool ProcessPending()
    {
        bool any = false;
        for (;;)
        {
            int r = LibSystemd.sd_bus_process(_bus, null);
            if (r < 0) SdBus.Check(r, "D-Bus connection lost");
            if (r == 0) return any;
            any = true;
        }
    }

    /// <summary>
    /// Serves the bus on the calling thread until <paramref name="cancel"/> fires. Sleeps until a
    /// message arrives, sd-bus has a deadline of its own, or the cancellation: an idle daemon
    /// does not wake for D-Bus (it used to, four times a second, to look at the token).
    /// With <paramref name="tick"/>, also wakes at least that often to call <paramref name="onTick"/>.
    /// </summary>
    public void Run(CancellationToken cancel, TimeSpan? tick = null, Action? onTick = null)
    {
        int stop = Libc.eventfd(0, Libc.EFD_CLOEXEC | Libc.EFD_NONBLOCK);
        int epoll = Libc.epoll_create1(Libc.EPOLL_CLOEXEC);
        try
        {
            if (stop < 0 || epoll < 0) throw new IOException($"D-Bus wait: eventfd/epoll_create1: {Libc.ErrorMessage(Marshal.GetLastPInvokeError())}");
            var stopEvent = new EpollEvent { Events = Libc.EPOLLIN, Data = 0 };
            var busEvent = new EpollEvent { Events = Libc.EPOLLIN, Data = 1 };
            if (Libc.epoll_ctl(epoll, Libc.EPOLL_CTL_ADD, stop, &stopEvent) < 0
                || Libc.epoll_ctl(epoll, Libc.EPOLL_CTL_ADD, FileDescriptor, &busEvent) < 0)
                throw new IOException($"D-Bus wait: epoll_ctl: {Libc.ErrorMessage(Marshal.GetLastPInvokeError())}");
            // Disposed before the eventfd closes: a callback under way is waited for.
            using var wake = cancel.Register(() =>
            {
                ulong one = 1;
                Libc.write(stop, &one, sizeof(ulong));
            });
            var ready = stackalloc EpollEvent[2];
            while (!cancel.IsCancellationRequested)
            {
                ProcessPending();
                onTick?.Invoke();
                // sd-bus asks for POLLOUT (= EPOLLOUT) only while it has output queued.
                busEvent.Events = PollEvents;
                if (Libc.epoll_ctl(epoll, Libc.EPOLL_CTL_MOD, FileDescriptor, &busEvent) < 0)
                    throw new IOException($"D-Bus wait: epoll_ctl: {Libc.ErrorMessage(Marshal.GetLastPInvokeError())}");
                var timeout = ProcessTimeout;
                if (tick is { } t && (timeout is null || t < timeout)) timeout = t;
                int ms = timeout is { } left ? (int)Math.Min(int.MaxValue, Math.Ceiling(left.TotalMilliseconds)) : -1;
                if (Libc.epoll_wait(epoll, ready, 2, ms) < 0 && Marshal.GetLastPInvokeError() != Libc.EINTR)
                    throw new IOException($"D-Bus wait: epoll_wait: {Libc.ErrorMessage(Marshal.GetLastPInvokeError())}");
            }
        }
        finally
        {
            if (epoll >= 0) Libc.close(epoll);
            if (stop >= 0) Libc.close(stop);
        }
    }

    public void Dispose()
    {
        if (_bus != 0)
        {
            // Floating slots go with the bus, so the vtables may be freed afterwards.
            LibSystemd.sd_bus_flush_close_unref(_bus);
            _bus = 0;
        }
        _arena.Dispose();
        if (_self.IsAllocated) _self.Free();
    }

    // ---- callbacks (libsystemd calls them on the thread that runs sd_bus_process) ----

    private static TcmuService Self(nint userdata) => (TcmuService)GCHandle.FromIntPtr(userdata).Target!;

    [UnmanagedCallersOnly] // platform default = the C ABI libsystemd calls with
    private static int OnGetConfigDesc(nint bus, byte* path, byte* iface, byte* property, nint reply, nint userdata, SdBusError* error)
    {
        try
        {
            return LibSystemd.sd_bus_message_append_basic(reply, LibSystemd.SD_BUS_TYPE_STRING, Self(userdata)._configDesc);
        }
        catch
        {
            return -SdBus.EOPNOTSUPP;
        }
    }

    [UnmanagedCallersOnly] // platform default = the C ABI libsystemd calls with
    private static int OnCheckConfig(nint call, nint userdata, SdBusError* error)
    {
        try
        {
            string config = SdBus.ReadString(call);
            // Open to every caller (targetcli asks as root, but anyone may), so only privileged
            // callers get the checks that look at the backing path. An error querying the sender
            // counts as unprivileged.
            bool privileged = LibSystemd.sd_bus_query_sender_privilege(call, LibSystemd.CAP_SYS_ADMIN) > 0;
            var (ok, reason) = Self(userdata).CheckConfig(config, privileged);
            SdBus.Reply(call, m =>
            {
                SdBus.AppendBool(m, ok);
                SdBus.AppendString(m, reason);
            });
            return 1;
        }
        catch (Exception e)
        {
            return Failed(call, "CheckConfig", e);
        }
    }

    private (bool Ok, string Reason) CheckConfig(string config, bool privileged)
    {
        if (!config.StartsWith(Subtype + "/", StringComparison.Ordinal))
            return (false, $"config string must start with '{Subtype}/', got '{config}'");
        var check = privileged ? _handlers.CheckConfig : _handlers.CheckSyntax ?? (_ => (true, ""));
        var (ok, reason) = check(config);
        if (!privileged && ok) return (true, "success (syntax only: the path is checked for privileged callers)");
        // tcmu-runner's wording: "success", and "unknown" for a missing reason.
        return ok ? (true, "success") : (false, string.IsNullOrWhiteSpace(reason) ? "unknown" : reason);
    }

    [UnmanagedCallersOnly] // platform default = the C ABI libsystemd calls with
    private static int OnChangeMedium(nint call, nint userdata, SdBusError* error)
    {
        try
        {
            // targetcli's "changemedium" (docs/tcmu.md §14) expects an (is) answer, not a D-Bus error.
            string name = SdBus.ReadString(call);
            Log.Info($"D-Bus: ChangeMedium for '{name}' refused: not supported");
            SdBus.Reply(call, m =>
            {
                SdBus.AppendInt32(m, -SdBus.EOPNOTSUPP);
                SdBus.AppendString(m, ChangeMediumMessage);
            });
            return 1;
        }
        catch (Exception e)
        {
            return Failed(call, "ChangeMedium", e);
        }
    }

    [UnmanagedCallersOnly] // platform default = the C ABI libsystemd calls with
    private static int OnGetStatusJson(nint call, nint userdata, SdBusError* error)
    {
        try
        {
            var self = Self(userdata);
            var status = self._handlers.GetStatus?.Invoke() ?? new AdminStatus(DaemonVersion, []);
            string json = AdminJsonContext.Serialize(status);
            SdBus.Reply(call, m => SdBus.AppendString(m, json));
            return 1;
        }
        catch (Exception e)
        {
            return Failed(call, "GetStatusJson", e);
        }
    }

    [UnmanagedCallersOnly] // platform default = the C ABI libsystemd calls with
    private static int OnClearReservations(nint call, nint userdata, SdBusError* error)
    {
        try
        {
            string volume = SdBus.ReadString(call);
            bool confirm = SdBus.ReadBool(call);
            var (ok, message) = Self(userdata).ClearReservations(volume, confirm);
            SdBus.Reply(call, m =>
            {
                SdBus.AppendBool(m, ok);
                SdBus.AppendString(m, message);
            });
            return 1;
        }
        catch (Exception e)
        {
            return Failed(call, "ClearReservations", e);
        }
    }

    private (bool Ok, string Message) ClearReservations(string volume, bool confirm)
    {
        if (!confirm)
            return (false, "refused: clearing reservations removes every registration and the reservation of the volume, " +
                           "which can let a fenced node write again; call again with confirm=true");
        if (_handlers.ClearReservations is null)
            return (false, "this daemon has no reservation engine to clear");
        var (ok, message) = _handlers.ClearReservations(volume);
        Log.Notice($"D-Bus: ClearReservations '{volume}': {(ok ? "done" : "failed")}: {message}");
        return (ok, message);
    }

    private static int Failed(nint call, string member, Exception e)
    {
        Log.Error($"D-Bus: {member} failed: {e.Message}");
        try
        {
            int r = SdBus.ReplyError(call, ErrorFailed, $"{member} failed: {e.Message}");
            return r < 0 ? r : 1;
        }
        catch
        {
            return -SdBus.EOPNOTSUPP;
        }
    }

    private static string DaemonVersion =>
        typeof(TcmuService).Assembly.GetName().Version?.ToString(3) ?? "0.0.0";
}
