using System.Runtime.InteropServices;
using TcmuSharedVolume.Diagnostics;
using TcmuSharedVolume.Interop;
using TcmuSharedVolume.Linux.Configfs;
using TcmuSharedVolume.Linux.Configuration;
using TcmuSharedVolume.Linux.DBus;
using TcmuSharedVolume.Linux.Metrics;
using TcmuSharedVolume.Linux.Discovery;
using TcmuSharedVolume.Linux.Netlink;
using TcmuSharedVolume.Linux.Systemd;
using TcmuSharedVolume.Linux.Tcmu;
using TcmuSharedVolume.Volumes;

namespace TcmuSharedVolume.Daemon;

/// <summary>
/// The control thread: start-up adoption, netlink device events, the D-Bus service, systemd
/// notifications and the periodic tick (nexus binding and loss, watchdog). The data path runs on
/// the <see cref="RingEventLoop"/>'s threads and never waits on this one.
/// </summary>
public sealed class Daemon
{
    private readonly Func<DaemonOptions> _loadOptions;
    private DaemonOptions _options;
    private volatile bool _reload;

    public Daemon(DaemonOptions options, Func<DaemonOptions> loadOptions)
    {
        _options = options;
        _loadOptions = loadOptions;
    }

    public void RequestReload() => _reload = true;

    /// <summary>Exit status when another TCMU daemon (a second instance, or tcmu-runner) holds the
    /// lock or the D-Bus name. The unit lists it in RestartPreventExitStatus=: restarting cannot
    /// help until the other daemon is stopped.</summary>
    public const int ExitAnotherDaemon = 3;

    public const string DefaultLockFile = "/run/tcmu-shared-volume.lock";

    /// <summary>tcmu-runner's single-instance lock (it takes a whole-file fcntl write lock).</summary>
    public const string DefaultTcmuRunnerLockFile = "/run/tcmu.lock";

    /// <summary>Our own single-instance lock file.</summary>
    public string LockFile { get; init; } = DefaultLockFile;

    /// <summary>tcmu-runner's lock file: held too, so that neither daemon starts beside the other.</summary>
    public string TcmuRunnerLockFile { get; init; } = DefaultTcmuRunnerLockFile;

    /// <summary>Takes both locks, ours first. Null with the reason logged when another daemon has one.</summary>
    public static (InstanceLock? Own, InstanceLock? Runner, string? Error) AcquireLocks(string lockFile, string tcmuRunnerLockFile)
    {
        var own = InstanceLock.TryAcquire(lockFile, out bool held, out var error);
        if (own is null)
            return (null, null, held
                ? $"another tcmu-shared-volume is running ({error}); stop it first: two daemons would read the same rings"
                : error);
        var runner = InstanceLock.TryAcquire(tcmuRunnerLockFile, out held, out error);
        if (runner is null)
        {
            own.Dispose();
            return (null, null, held
                ? $"tcmu-runner is running ({error}); stop it first (systemctl stop tcmu-runner): both daemons answer TCMU netlink and cannot run side by side"
                : error);
        }
        return (own, runner, null);
    }

    public int Run(CancellationToken stop)
    {
        // Before anything touches configfs, netlink or a ring: a second daemon would reset the
        // first one's rings, map them and run a second reservation engine on the same volumes.
        var (ownLock, runnerLock, lockError) = AcquireLocks(LockFile, TcmuRunnerLockFile);
        if (ownLock is null || runnerLock is null)
        {
            Log.Error($"not starting: {lockError}");
            return ExitAnotherDaemon;
        }
        using var heldOwn = ownLock;
        using var heldRunner = runnerLock;

        using var notify = new SdNotify(Environment.GetEnvironmentVariable("NOTIFY_SOCKET"),
            Environment.GetEnvironmentVariable("WATCHDOG_USEC"), Environment.GetEnvironmentVariable("WATCHDOG_PID"));
        var configfs = new TargetConfigfs { HostNumber = _options.HostId };
        if (!configfs.IsMounted)
            Log.Warning($"{configfs.Root} is not there: load target_core_user and mount configfs; waiting for devices");

        DeviceManager? devices = null;
        using var loop = new RingEventLoop(_options.WorkerThreads, ringLost: (ring, why) => devices?.RingLost(ring, why));
        devices = new DeviceManager(configfs, loop, _options.StateDirectory);
        try
        {
            // The bus name before configfs too: a name owned by someone else means another TCMU
            // daemon that took no lock (an old tcmu-runner, or one with another lock path).
            if (!TryStartDBus(devices, out var dbus))
                return ExitAnotherDaemon;
            using var dbusOwned = dbus;
            using var metrics = StartMetrics(devices);

            // Block netlink and fail what a previous daemon left pending, so no enable/rmdir
            // stays stuck, then adopt what exists, then unblock, whatever adoption threw.
            var started = System.Diagnostics.Stopwatch.StartNew();
            TcmuNetlinkChannel? netlink = null;
            var discovery = new UioDiscovery();
            WithNetlinkBlocked(configfs, blocked =>
            {
                TcmuNetlinkChannel.TryOpen(out netlink, out var netlinkError);
                Log.Info($"start: netlink {(blocked ? "blocked and reset" : "not blocked")} after {started.ElapsedMilliseconds} ms");
                if (netlink is null)
                    Log.Warning($"netlink: {netlinkError}; scanning for devices every second until it appears");
                foreach (var device in SafeScan(discovery))
                    devices.Adopt(device, existing: true);
            });
            Log.Info($"start: {devices.PathCount} existing device(s) adopted after {started.ElapsedMilliseconds} ms");

            notify.Ready(devices.StatusLine);
            Log.Notice($"ready: {devices.StatusLine}");

            netlink = ControlLoop(stop, netlink, discovery, devices, notify, dbus);
            netlink?.Dispose();

            notify.Stopping(devices.StatusLine);
            var stopping = System.Diagnostics.Stopwatch.StartNew();
            int blockedOnStop = devices.BlockAll();
            Log.Notice($"stopping: {blockedOnStop} of {devices.PathCount} device(s) blocked (new commands get BUSY until the next start); serving what their rings hold");
            if (!loop.Quiesce(TimeSpan.FromSeconds(20)))
                Log.Warning("the rings still held commands after 20 s; the next start fails them with BUSY (reset_ring)");
            if (!loop.Stop(TimeSpan.FromSeconds(5)))
                Log.Warning("some commands did not finish; the kernel will time them out");
            long drained = stopping.ElapsedMilliseconds;
            devices.FlushAll();
            Log.Info($"stopped: in-flight commands done in {drained} ms, volumes flushed in {stopping.ElapsedMilliseconds - drained} ms");
            return 0;
        }
        finally
        {
            devices.Dispose();
        }
    }

    private TcmuNetlinkChannel? ControlLoop(CancellationToken stop, TcmuNetlinkChannel? netlink, UioDiscovery discovery,
        DeviceManager devices, SdNotify notify, DBusThread? dbus)
    {
        var events = new List<TcmuNetlinkEvent>();
        var waiter = new FdWaiter(netlink?.Fd ?? -1);
        long nextTick = 0;
        string lastStatus = "";
        while (!stop.IsCancellationRequested)
        {
            if (netlink is not null && waiter.Wait(500))
            {
                events.Clear();
                try { netlink.Receive(events, wait: false); }
                catch (Exception e) when (e is IOException or NetlinkException) { Log.Error($"netlink: {e.Message}"); }
                foreach (var evt in events) Handle(evt, netlink, discovery, devices);
            }
            else if (netlink is null)
            {
                stop.WaitHandle.WaitOne(500);
            }

            if (_reload)
            {
                _reload = false;
                Reload(notify, devices);
            }

            long now = Environment.TickCount64;
            if (now >= nextTick)
            {
                nextTick = now + 1000;
                if (netlink is null)
                {
                    // The module may be loaded after us: pick netlink up as soon as it exists.
                    if (TcmuNetlinkChannel.TryOpen(out netlink, out _))
                    {
                        waiter.Dispose();
                        waiter = new FdWaiter(netlink.Fd);
                        Log.Notice("netlink: TCM-USER family found; listening for device events");
                    }
                    foreach (var device in SafeScan(discovery)) devices.Adopt(device, existing: false, rescan: true);
                }
                devices.Tick();
                notify.Watchdog();
                if (devices.StatusLine != lastStatus)
                {
                    lastStatus = devices.StatusLine;
                    notify.Status(lastStatus);
                }
                if (dbus is not null && !dbus.IsAlive) Log.Warning("D-Bus service stopped");
            }
        }
        waiter.Dispose();
        return netlink;
    }

    /// <summary>Answers one netlink event. Every request gets a reply, even when handling it threw:
    /// the kernel's enable/rmdir waits for it.</summary>
    internal static void Handle(TcmuNetlinkEvent evt, TcmuNetlinkChannel netlink, UioDiscovery discovery, DeviceManager devices)
    {
        if (!evt.ShouldReply) return; // another handler's device: not ours to answer
        if (evt.HbaIndex is not { } hba || evt.DeviceName is not { } name)
        {
            Log.Warning($"netlink {evt.Command}: cannot parse device name '{evt.Device}'");
            netlink.Reply(evt, -22);
            return;
        }
        if (evt.Command is not (TcmuCommand.AddedDevice or TcmuCommand.RemovedDevice or TcmuCommand.ReconfigDevice))
            return;
        int status;
        try
        {
            status = Dispatch(evt, hba, name, discovery, devices);
        }
        catch (Exception e)
        {
            status = Fail($"netlink {evt.Command} {evt.Device}: {e.GetType().Name}: {e.Message}", -5);
        }
        try { netlink.Reply(evt, status); }
        catch (Exception e) when (e is IOException or NetlinkException) { Log.Error($"netlink reply for {evt.Device}: {e.Message}"); }
    }

    private static int Dispatch(TcmuNetlinkEvent evt, int hba, string name, UioDiscovery discovery, DeviceManager devices)
    {
        switch (evt.Command)
        {
            case TcmuCommand.AddedDevice:
                var found = discovery.FindByMinor((int)evt.Minor);
                return found is null ? Fail($"{evt.Device}: /sys/class/uio has no uio device with minor {evt.Minor}", -19)
                    : devices.Adopt(found, existing: false);
            case TcmuCommand.RemovedDevice:
                return devices.Remove(hba, name);
            default:
                return devices.Reconfigure(hba, name, evt.NewDevConfig, evt.NewDevSize, evt.NewWriteCache);
        }
    }

    private static int Fail(string message, int errno)
    {
        Log.Error(message);
        return errno;
    }

    private void Reload(SdNotify notify, DeviceManager devices)
    {
        notify.Reloading("reloading configuration");
        try
        {
            var options = _loadOptions();
            Log.Level = options.LogLevel;
            if (options.StateDirectory != _options.StateDirectory || options.WorkerThreads != _options.WorkerThreads
                || options.HostId != _options.HostId || options.MetricsListen != _options.MetricsListen)
                Log.Warning("state_directory, worker_threads, host_id and metrics_listen take effect at the next restart");
            _options = options;
            Log.Notice("configuration reloaded");
        }
        catch (ConfigurationException e)
        {
            Log.Error($"reload failed, keeping the previous configuration: {e.Message}");
        }
        notify.ReloadDone(devices.StatusLine);
    }

    /// <summary>The metrics endpoint if metrics_listen is set; a failure to bind is logged and
    /// the daemon serves on without it (metrics are never worth refusing I/O for).</summary>
    private MetricsServer? StartMetrics(DeviceManager devices)
    {
        if (_options.MetricsListen is not { } endpoint) return null;
        try
        {
            var server = MetricsServer.Start(endpoint,
                () => MetricsExposition.Render(devices.Volumes, ProcessStats.Read(Program.Started.Elapsed), Program.Version));
            Log.Info($"metrics: serving Prometheus text format on {endpoint.Text} (GET /metrics)");
            return server;
        }
        catch (IOException e)
        {
            Log.Error($"metrics: {e.Message}; serving without metrics");
            return null;
        }
    }

    private static IReadOnlyList<TcmuSharedVolume.Linux.Discovery.UioDevice> SafeScan(UioDiscovery discovery)
    {
        try { return discovery.Scan(); }
        catch (IOException e)
        {
            Log.Warning($"scanning {discovery.Root}: {e.Message}");
            return [];
        }
    }

    /// <summary>
    /// Runs start-up adoption with target_core_user's netlink blocked (and what a previous daemon
    /// left waiting reset), and unblocks it afterwards whatever <paramref name="adopt"/> threw:
    /// left blocked, every later enable and rmdir of a TCMU backstore, ours or not, fails with
    /// EAGAIN until someone clears it by hand.
    /// </summary>
    internal static void WithNetlinkBlocked(TargetConfigfs configfs, Action<bool> adopt)
    {
        bool blocked = TryBlockNetlink(configfs);
        try
        {
            adopt(blocked);
        }
        finally
        {
            if (blocked) TrySetBlockNetlink(configfs, false);
        }
    }

    private static bool TryBlockNetlink(TargetConfigfs configfs)
    {
        if (!TrySetBlockNetlink(configfs, true)) return false;
        try { configfs.ResetNetlink(); }
        catch (IOException e) { Log.Warning($"reset_netlink: {e.Message}"); }
        return true;
    }

    private static bool TrySetBlockNetlink(TargetConfigfs configfs, bool block)
    {
        try
        {
            configfs.SetBlockNetlink(block);
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Log.Debug($"block_netlink={(block ? 1 : 0)}: {e.Message}");
            return false;
        }
    }

    /// <summary>Owns org.kernel.TCMUService1. False (logged) when another process owns it: that is
    /// another TCMU daemon, and serving beside it is not safe. No bus at all, or no libsystemd,
    /// is only a warning: the rings are served, targetcli just cannot list the handler.</summary>
    private bool TryStartDBus(DeviceManager devices, out DBusThread? dbus)
    {
        dbus = null;
        try
        {
            dbus = new DBusThread(new TcmuServiceHandlers
            {
                CheckConfig = CheckConfig,
                CheckSyntax = CheckConfigSyntax,
                GetStatus = () => AdminStatusBuilder.Build(devices),
                ClearReservations = volume => AdminStatusBuilder.Clear(devices, volume),
            });
            return true;
        }
        catch (DBusException e) when (e.Errno == 17) // EEXIST: the name has another owner
        {
            Log.Error($"not starting: {e.Message}");
            return false;
        }
        catch (Exception e) when (e is DBusException or DllNotFoundException or IOException)
        {
            Log.Warning($"D-Bus: {e.Message}; targetcli will not list user:sharedvol until the daemon can own org.kernel.TCMUService1");
            return true;
        }
    }

    /// <summary>targetcli's CheckConfig: the full string, "sharedvol/..." included.</summary>
    public static (bool Ok, string Reason) CheckConfig(string config)
    {
        if (!VolumeConfig.TryParse(config, out var parsed, out var error))
            return (false, error);
        var (ok, reason) = parsed.Validate();
        return ok ? (true, "success") : (false, reason ?? "invalid");
    }

    /// <summary>
    /// CheckConfig for unprivileged callers: parses, never looks at the path, so the answer cannot
    /// tell whether a file exists, is empty or is a directory where the caller cannot look.
    /// </summary>
    public static (bool Ok, string Reason) CheckConfigSyntax(string config) =>
        VolumeConfig.TryParse(config, out _, out var error) ? (true, "success") : (false, error);

    /// <summary>Waits for one fd to become readable, with a timeout.</summary>
    private sealed unsafe class FdWaiter : IDisposable
    {
        private readonly int _epoll = -1;

        public FdWaiter(int fd)
        {
            if (fd < 0) return;
            _epoll = Libc.epoll_create1(Libc.EPOLL_CLOEXEC);
            if (_epoll < 0) throw new IOException($"epoll_create1: {Libc.ErrorMessage(Marshal.GetLastPInvokeError())}");
            var ev = new EpollEvent { Events = Libc.EPOLLIN, Data = 1 };
            if (Libc.epoll_ctl(_epoll, Libc.EPOLL_CTL_ADD, fd, &ev) < 0)
                throw new IOException($"epoll_ctl: {Libc.ErrorMessage(Marshal.GetLastPInvokeError())}");
        }

        public bool Wait(int timeoutMs)
        {
            EpollEvent ev;
            return Libc.epoll_wait(_epoll, &ev, 1, timeoutMs) > 0;
        }

        public void Dispose()
        {
            if (_epoll >= 0) Libc.close(_epoll);
        }
    }
}
