using TcmuSharedVolume.Backends;
using TcmuSharedVolume.Diagnostics;
using TcmuSharedVolume.Linux.Configfs;
using TcmuSharedVolume.Linux.Tcmu;
using TcmuSharedVolume.Reservations;
using TcmuSharedVolume.Scsi;
using TcmuSharedVolume.Volumes;
using DiscoveredDevice = TcmuSharedVolume.Linux.Discovery.UioDevice;

namespace TcmuSharedVolume.Daemon;

/// <summary>
/// The daemon's devices: each adopted TCMU backstore becomes a path (a ring in the event loop)
/// of the volume its backing path names. Backstores on the same canonical backing path share
/// one <see cref="Volume"/>: one open backing store, one identity, one reservation table.
/// Called from the control thread only, except <see cref="TryBind"/> which any worker may call.
/// </summary>
public sealed class DeviceManager : IDisposable
{
    /// <summary>How often a bound path's binding is resolved again from configfs (an ACL added
    /// later, demo mode switched on): one configfs walk per path per interval.</summary>
    public static readonly TimeSpan RebindInterval = TimeSpan.FromSeconds(5);

    private readonly TargetConfigfs _configfs;
    private readonly RingEventLoop _loop;
    private readonly string _stateDirectory;
    private readonly IDeviceOpener _opener;
    private readonly Dictionary<string, Volume> _volumes = new(StringComparer.Ordinal);
    private readonly Dictionary<string, Device> _devices = new(StringComparer.Ordinal);
    /// <summary>Removed devices whose ring still had commands running: freed on a later tick.</summary>
    private readonly List<Device> _retiring = new();
    /// <summary>Devices refused, with the errno given: a rescan does not log the same refusal every second.</summary>
    private readonly Dictionary<string, (string DevConfig, int Errno)> _refused = new(StringComparer.Ordinal);
    private readonly Lock _bindLock = new();

    public DeviceManager(TargetConfigfs configfs, RingEventLoop loop, string stateDirectory, IDeviceOpener? opener = null)
    {
        _configfs = configfs;
        _loop = loop;
        _stateDirectory = stateDirectory;
        _opener = opener ?? new UioDeviceOpener();
    }

    /// <summary>One adopted backstore: its ring mapping and path.</summary>
    private sealed class Device(string key, IRingMapping mapping, VolumePath path, UserBackstore backstore,
        VolumeConfig config)
    {
        public readonly string Key = key;
        public readonly IRingMapping Mapping = mapping;
        public readonly VolumePath Path = path;
        public readonly UserBackstore Backstore = backstore;
        public readonly VolumeConfig Config = config;
        public TcmuRing Ring => Mapping.Ring;
        public long NextBindAttempt;
        public long NextRebind;
        /// <summary>The nexus this path first served. Unbinding keeps it: the path may be bound
        /// again to this nexus only, so commands of another initiator are never taken for this one's.</summary>
        public ItNexus? Pinned;
        public NexusSessionWatch? Watch;
        public NexusBinding? Binding;
    }

    /// <summary>A refusal with its reason and the errno for the netlink reply.</summary>
    private sealed class RefusedException(string reason, int errno) : Exception(reason)
    {
        public int Errno { get; } = errno;
    }

    public int VolumeCount => _volumes.Count;
    public int PathCount => _devices.Count;

    /// <summary>Removed paths whose rings are not freed yet (commands still running).</summary>
    public int RetiringCount => _retiring.Count;

    /// <summary>A snapshot: the D-Bus thread reads it while the control thread adopts devices.</summary>
    public Volume[] Volumes
    {
        get { lock (_volumes) return [.. _volumes.Values]; }
    }

    public string StatusLine => $"serving {VolumeCount} volume(s) over {PathCount} path(s)";

    /// <summary>The path serving a backstore, or null (tests, status).</summary>
    public VolumePath? PathOf(int hbaIndex, string name) => _devices.TryGetValue(Key(hbaIndex, name), out var d) ? d.Path : null;

    private static string Key(int hbaIndex, string name) => $"user_{hbaIndex}/{name}";

    /// <summary>
    /// Adopts one sharedvol device. <paramref name="existing"/> is true for devices found at
    /// start-up (a previous daemon may have left commands in the ring: reset it so the kernel
    /// fails them with BUSY and the initiators retry), false for a device announced by netlink
    /// while its enable is still in progress (its ring is new, and the ring actions are refused
    /// until the enable completes).
    /// Returns 0, or a negative errno for the netlink reply, with the reason logged. Nothing one
    /// device can throw leaves this method: a corrupt state file, a bad number in sysfs or
    /// configfs, a backstore removed under our feet all refuse this device only.
    /// A refused existing device is left blocked (block_dev=1): the kernel answers its new
    /// commands BUSY instead of queueing them in a ring nobody serves, where they would wait for
    /// cmd_time_out and fail; the next start (after the cause is fixed) adopts and unblocks it.
    /// A refused new device fails its enable with the errno. <paramref name="rescan"/>: found by
    /// the periodic scan (no netlink), which does not try a refused device again.
    /// </summary>
    public int Adopt(DiscoveredDevice found, bool existing, bool rescan = false)
    {
        string key = Key(found.HbaIndex, found.DeviceName);
        if (_devices.ContainsKey(key)) return 0;
        if (rescan && _refused.TryGetValue(key, out var before) && before.DevConfig == found.DevConfig)
            return before.Errno;
        long t0 = Environment.TickCount64;
        UserBackstore? backstore = null;
        bool blocked = false;
        Volume? volume = null;
        IRingMapping? mapping = null;
        try
        {
            backstore = _configfs.Backstore(found.HbaIndex, found.DeviceName);
            if (existing && backstore.HasRingActions)
            {
                // First of all, so that whatever happens below the device is blocked and its
                // leftover commands are failed with BUSY rather than left to time out.
                // Blocked even if the reset then failed: unblocked on success either way.
                blocked = true;
                var (resetOk, resetReason) = backstore.BlockAndResetRing();
                if (!resetOk) Log.Warning($"{key}: could not reset the ring: {resetReason}");
            }

            if (!VolumeConfig.TryParse(found.DevConfig, out var config, out var parseError))
                throw new RefusedException($"config string '{found.DevConfig}' is not valid: {parseError}", -22);
            var (valid, reason) = config.Validate();
            if (!valid)
                throw new RefusedException(reason ?? "invalid configuration", -22);

            // Without pgr_support=0 the kernel answers PR from its own per-backstore tables and does
            // its own conflict checks: two paths of one volume would disagree.
            var (prOk, prReason) = backstore.EnablePrPassthrough();
            if (!prOk)
                throw new RefusedException($"cannot take reservations from the kernel: {prReason}", -95);
            var (tmrOk, tmrReason) = backstore.EnableTmrNotification();
            if (!tmrOk)
                Log.Warning($"{key}: TMR notification not enabled ({tmrReason}); LUN RESET will not break SPC-2 reservations on this path");

            int blockSize = backstore.HwBlockSize ?? 512;
            try
            {
                volume = GetOrOpenVolume(config, blockSize);
            }
            catch (Exception e) when (e is not RefusedException)
            {
                throw new RefusedException($"cannot open volume {config.Path}: {e.Message}", ErrnoOf(e));
            }
            if (volume.BlockSize != blockSize)
                throw new RefusedException($"hw_block_size {blockSize} differs from the volume's {volume.BlockSize} (set by its other paths)", -22);
            if (config.AbortTimeout is { } abortTimeout && volume.Paths.Count == 0)
                volume.Reservations.AbortDrainTimeout = abortTimeout;

            try
            {
                mapping = _opener.OpenRing(found, key);
            }
            catch (Exception e)
            {
                throw new RefusedException($"cannot map the ring of /dev/uio{found.UioIndex}: {e.Message}", ErrnoOf(e));
            }

            var binding = _configfs.ResolveNexus(found.HbaIndex, found.DeviceName, config);
            if (binding.Warning is { } w) Log.Warning($"{key}: {w}");
            var path = volume.AddPath(key, binding.Nexus, binding.UnboundReason);
            path.LimitTransferLength(mapping.Ring.MapLength - mapping.Ring.DataOffset); // a larger command never reaches the ring
            if (existing) path.PowerOnOccurred(); // its SPC-2 reservations and unit attentions died with the old daemon
            var device = new Device(key, mapping, path, backstore, config)
            {
                Binding = binding,
                Pinned = binding.Nexus,
                NextRebind = Environment.TickCount64 + (long)RebindInterval.TotalMilliseconds,
            };
            device.Watch = new NexusSessionWatch(_configfs);
            try
            {
                _loop.Add(mapping.Ring, mapping.Events, new VolumePathExecutor(path, () => TryBind(device, force: true), CheckNexus));
            }
            catch
            {
                volume.RemovePath(path);
                throw;
            }
            _devices[key] = device;
            Volatile.Write(ref _deviceList, [.. _devices.Values]);
            _refused.Remove(key);
            if (blocked) Unblock(backstore);

            Log.Notice(path.Nexus is { } n
                ? $"{key}: serving volume {volume.Identity.UnitSerial} ({config.Path}) for {n}"
                : $"{key}: serving volume {volume.Identity.UnitSerial} ({config.Path}), not yet bound to an initiator: {path.UnboundReason}");
            Log.Info($"{key}: adopted in {Environment.TickCount64 - t0} ms{(existing ? " (existing ring" + (blocked ? ", reset)" : ")") : "")}");
            return 0;
        }
        catch (Exception e)
        {
            // The one refusal path: give back what was taken, in reverse order.
            if (mapping is not null)
            {
                try { mapping.Dispose(); }
                catch (Exception d) { Log.Warning($"{key}: releasing the ring: {d.Message}"); }
            }
            if (volume is not null)
            {
                try { CloseVolumeIfUnused(volume); }
                catch (Exception d) { Log.Warning($"{key}: closing the volume: {d.Message}"); }
            }
            int errno = e is RefusedException r ? r.Errno : ErrnoOf(e);
            string why = e is RefusedException ? e.Message : $"{e.GetType().Name}: {e.Message}";
            _refused[key] = (found.DevConfig, errno);
            Log.Error($"{key}: not served: {why}{(blocked ? " (left blocked: its commands get BUSY until it is adopted)" : "")}");
            return errno;
        }
    }

    /// <summary>The errno a refusal answers netlink with.</summary>
    private static int ErrnoOf(Exception e) => e switch
    {
        RefusedException r => r.Errno,
        BackingStoreException b when b.Errno > 0 => -b.Errno,
        UnauthorizedAccessException => -13,                                       // EACCES
        FileNotFoundException or DirectoryNotFoundException => -2,                // ENOENT
        FormatException or InvalidDataException or ArgumentException => -22,      // EINVAL
        _ => -5,                                                                  // EIO
    };

    private static void Unblock(UserBackstore backstore)
    {
        try { backstore.BlockDevice(false); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Log.Warning($"{backstore.DisplayName}: could not unblock: {e.Message}");
        }
    }

    private VolumeOpener? _volumeOpener;

    /// <summary>
    /// The volume of the config's disk: paths are grouped by what they open (a file's st_dev and
    /// st_ino, a block device's st_rdev), so a hard link or a second device node is the same
    /// volume; the identity is kept in the state directory, and a second disk with a serial
    /// already in use is refused (<see cref="VolumeOpener"/>).
    /// </summary>
    private Volume GetOrOpenVolume(VolumeConfig config, int blockSize)
    {
        if (config.Rbd is not null) return GetOrOpenRbdVolume(config, blockSize);
        _volumeOpener ??= new VolumeOpener(_stateDirectory, wrapStore: _opener.WrapStore);
        var volume = _volumeOpener.GetOrOpen(config, blockSize,
            v => _volumes.TryGetValue(v.BackingPath, out var same) && ReferenceEquals(same, v));
        if (_volumes.TryGetValue(volume.BackingPath, out var other) && !ReferenceEquals(other, volume))
        {
            // A file that was deleted while served and created anew at the same path: another disk.
            volume.Dispose();
            throw new VolumeConflictException($"{volume.BackingPath} is served already as another disk ({other.Identity.UnitSerial}), which was replaced on disk; remove its backstores first");
        }
        lock (_volumes) _volumes[volume.BackingPath] = volume;
        return volume;
    }

    /// <summary>
    /// An RBD image is one volume per pool/image name on this host, and may be served by other
    /// hosts at the same time: its identity is kept in the image's metadata (made once by the
    /// first host, from serial= if given) and its reservation table is the shared one in RADOS
    /// (docs/reservations.md §18), never a file of this host.
    /// </summary>
    private Volume GetOrOpenRbdVolume(VolumeConfig config, int blockSize)
    {
        var rbd = config.Rbd!;
        if (_volumes.TryGetValue(rbd.Path, out var existing))
        {
            if (config.Serial is { } s && s != existing.Identity.UnitSerial)
                Log.Warning($"{rbd.Path}: serial={s} ignored, the volume already serves as {existing.Identity.UnitSerial}");
            return existing;
        }
        var image = RbdStore.Open(rbd);
        IBackingStore? store = null;
        RbdReservationStore? table = null;
        try
        {
            var candidate = config.Serial is { } serial ? new VolumeIdentity(serial) : VolumeIdentity.NewRandom(Guid.NewGuid());
            var identity = RbdReservationStore.EstablishIdentity(image, candidate);
            if (config.Serial is { } given && given != identity.UnitSerial)
                Log.Warning($"{rbd.Path}: serial={given} ignored, the image's metadata names it {identity.UnitSerial} on every host");
            foreach (var other in _volumes.Values)
                if (other.Identity.UnitSerial == identity.UnitSerial)
                    throw new VolumeConflictException($"serial {identity.UnitSerial} is already the identity of {other.BackingPath}, another disk (a copied image keeps its {RbdReservationStore.IdentityKey} metadata: remove it from the copy)");
            store = _opener.WrapStore(image);
            table = new RbdReservationStore(image);
            var volume = new Volume(rbd.Path, store, blockSize, identity, table);
            lock (_volumes) _volumes[rbd.Path] = volume;
            return volume;
        }
        catch
        {
            table?.Dispose();
            (store ?? image).Dispose();
            throw;
        }
    }

    /// <summary>
    /// Closes the volume (its backing store's fd) once nothing uses it. Its paths are its
    /// reference count: a path stays in the volume until its ring is idle (see <see cref="Remove"/>),
    /// so the fd is closed after the last command of the last path has completed, never under a
    /// command still in pwritev (a closed fd number may be reused by the next open, and the
    /// write would land in another file).
    /// </summary>
    private void CloseVolumeIfUnused(Volume volume)
    {
        if (volume.Paths.Count != 0) return;
        lock (_volumes) _volumes.Remove(volume.BackingPath);
        volume.Dispose();
    }

    /// <summary>
    /// Stops serving a backstore (netlink REMOVED, or the uio device went away). The ring leaves
    /// the event loop at once (queued commands get BUSY), but its mapping, and the path's hold on
    /// the volume, are released only when its running commands have completed: a later
    /// <see cref="Tick"/> looks again. The control thread never waits for them here (it pings the
    /// watchdog). The kernel keeps the mapping valid after the device is gone until we unmap it.
    /// </summary>
    public int Remove(int hbaIndex, string name)
    {
        string key = Key(hbaIndex, name);
        _refused.Remove(key);
        if (!_devices.Remove(key, out var device)) return 0;
        Volatile.Write(ref _deviceList, [.. _devices.Values]);
        _retiring.Add(device);
        if (TryRetire(device))
            Log.Notice($"{key}: removed");
        else
            Log.Notice($"{key}: removed; its ring is freed once the commands still running on it complete");
        return 0;
    }

    /// <summary>Frees a removed device if its ring is idle. Returns whether it was freed.</summary>
    private bool TryRetire(Device device)
    {
        if (!_loop.Remove(device.Ring, TimeSpan.Zero)) return false;
        _retiring.Remove(device);
        try { device.Mapping.Dispose(); }
        catch (Exception e) { Log.Warning($"{device.Key}: releasing the ring: {e.Message}"); }
        var volume = device.Path.Volume;
        volume.RemovePath(device.Path);
        CloseVolumeIfUnused(volume);
        return true;
    }

    private void RetireIdle()
    {
        for (int i = _retiring.Count - 1; i >= 0; i--)
        {
            var device = _retiring[i];
            if (TryRetire(device)) Log.Info($"{device.Key}: its last commands completed; ring freed");
        }
    }

    private readonly System.Collections.Concurrent.ConcurrentQueue<(TcmuRing Ring, string Reason)> _lost = new();

    /// <summary>The event loop reports a ring's device gone, on one of its own threads: the
    /// removal, which waits for the ring's commands, happens on the control thread's next tick.</summary>
    public void RingLost(TcmuRing ring, string reason) => _lost.Enqueue((ring, reason));

    private void RemoveLostRings()
    {
        while (_lost.TryDequeue(out var lost))
            RemoveLost(lost.Ring, lost.Reason);
    }

    private void RemoveLost(TcmuRing ring, string reason)
    {
        foreach (var d in _devices.Values)
        {
            if (!ReferenceEquals(d.Ring, ring)) continue;
            Log.Warning($"{d.Key}: device gone ({reason})");
            var parts = d.Key.Split('/', 2);
            Remove(int.Parse(parts[0].AsSpan(5), System.Globalization.CultureInfo.InvariantCulture), parts[1]);
            return;
        }
    }

    /// <summary>
    /// RECONFIG: targetctl restore rewrites dev_config, dev_size and emulate_write_cache with the
    /// values they already have; those are accepted. A new write-cache setting is applied; a new
    /// size grows the volume (every backstore of it gets the same RECONFIG: the first grows it,
    /// the others find it done); a different backing path is refused.
    /// </summary>
    public int Reconfigure(int hbaIndex, string name, string? newConfig, ulong? newSize, bool? newWriteCache)
    {
        string key = $"user_{hbaIndex}/{name}";
        if (!_devices.TryGetValue(key, out var device)) return -19; // ENODEV
        var volume = device.Path.Volume;
        if (newConfig is not null)
        {
            if (newConfig == device.Config.DevConfig) return 0;
            Log.Warning($"{key}: refused to change dev_config to '{newConfig}' while serving; remove and re-create the backstore");
            return -95;
        }
        if (newSize is { } size)
        {
            if ((long)size == volume.Store.SizeBytes) return 0;
            try
            {
                long before = volume.Store.SizeBytes;
                volume.Resize((long)size);
                Log.Notice($"{key}: volume {volume.Identity.UnitSerial} resized from {before} to {size} bytes");
                return 0;
            }
            catch (BackingStoreException e)
            {
                Log.Warning($"{key}: refused to resize to {size} bytes: {e.Message}");
                return -e.Errno;
            }
        }
        if (newWriteCache is { } wce)
        {
            if (!wce && volume.WriteCacheEnabled)
            {
                try { volume.Store.Flush(); }
                catch (BackingStoreException e) { Log.Error($"{key}: flush before disabling the write cache failed: {e.Message}"); return -5; }
            }
            volume.WriteCacheEnabled = wce;
            return 0;
        }
        return 0;
    }

    /// <summary>
    /// Binds a path whose nexus was unknown (targetcli creates the backstore before the LUN and
    /// ACL). Any thread. The tick is rate-limited to one configfs walk per path per second; a
    /// reservation command arriving on the unbound path forces one, so that a PR OUT sent right
    /// after the ACL appeared is not refused.
    /// </summary>
    private void TryBind(Device device, bool force = false)
    {
        if (device.Path.Nexus is not null) return;
        long now = Environment.TickCount64;
        if (!force && now < Volatile.Read(ref device.NextBindAttempt)) return;
        lock (_bindLock)
        {
            if (device.Path.Nexus is not null || (!force && now < device.NextBindAttempt)) return;
            device.NextBindAttempt = now + 1000;
            NexusBinding binding;
            try
            {
                binding = _configfs.ResolveNexus(device.Backstore.HbaIndex, device.Backstore.Name, device.Config);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                device.Path.SetUnboundReason($"configfs: {e.Message}");
                return;
            }
            if (binding.Nexus is { } nexus)
            {
                if (device.Pinned is { } pinned && !pinned.Equals(nexus))
                {
                    device.Path.SetUnboundReason(Moved(nexus, pinned));
                    return;
                }
                device.Binding = binding;
                device.Pinned = nexus;
                device.NextRebind = now + (long)RebindInterval.TotalMilliseconds;
                if (device.Path.Bind(nexus)) Log.Notice($"{device.Key}: bound to {nexus}");
            }
            else if (binding.UnboundReason is { } r)
            {
                device.Path.SetUnboundReason(r);
            }
        }
    }

    /// <summary>
    /// Resolves a bound path's binding again (control thread, once per <see cref="RebindInterval"/>):
    /// LIO's configuration may have changed since the path was bound. An ACL added later that maps
    /// the same LUN, or demo mode switched on, lets a second initiator send commands into this
    /// ring, which would then act with the bound initiator's registrations. A path that can no
    /// longer be pinned to exactly one I_T nexus is unbound: it keeps serving I/O as an
    /// unregistered nexus, PR OUT on it is refused, and the registrations made through it stay in
    /// the table (they belong to the initiator, which may come back). A path that now resolves to
    /// another nexus is unbound too, with the reason logged, and stays unbound: it is bound again
    /// only to the nexus it first served (after an ambiguity is resolved, say), never switched to
    /// another initiator, whose commands would then use the first one's registrations.
    /// Returns whether the path was unbound.
    /// </summary>
    private bool CheckBinding(Device device, bool force = false)
    {
        long now = Environment.TickCount64;
        if (!force && now < device.NextRebind) return false;
        lock (_bindLock)
        {
            device.NextRebind = now + (long)RebindInterval.TotalMilliseconds;
            if (device.Path.Nexus is not { } current) return false;
            NexusBinding binding;
            try
            {
                binding = _configfs.ResolveNexus(device.Backstore.HbaIndex, device.Backstore.Name, device.Config);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // configfs changing under targetcli's hands: look again at the next interval.
                Log.Debug($"{device.Key}: re-resolving the binding: {e.Message}");
                return false;
            }
            if (binding.Nexus is { } nexus && nexus.Equals(current)) return false;
            string reason = binding.Nexus is { } other
                ? Moved(other, current)
                : binding.UnboundReason ?? "the nexus can no longer be resolved";
            if (!device.Path.Unbind(reason)) return false;
            // The next bind attempt waits a full second, so the change is seen in the log between.
            device.NextBindAttempt = now + 1000;
            Log.Warning($"{device.Key}: unbound from {current}: {reason}; PR OUT on this path is refused until it is bound again");
            return true;
        }
    }

    private static string Moved(ItNexus now, ItNexus before) =>
        $"configfs now maps this backstore to {now}, but it served {before}: a path never changes its initiator; " +
        $"remove and re-create the backstore (or restart the daemon) to serve {now.Initiator.Name} through it";

    /// <summary>
    /// Control-thread tick: frees removed rings that became idle, binds paths that are still
    /// unbound, re-checks the binding of bound ones, and detects I_T nexus loss (TCMU sends no
    /// logout notice): an initiator whose session went away loses its SPC-2 reservation, never
    /// its persistent ones. One device's failure is logged and does not stop the others.
    /// </summary>
    public void Tick()
    {
        RemoveLostRings();
        RetireIdle();
        foreach (var device in _devices.Values)
        {
            try
            {
                if (device.Path.Nexus is null)
                {
                    TryBind(device);
                    continue;
                }
                if (CheckBinding(device)) continue;
                CheckSession(device);
            }
            catch (Exception e)
            {
                Log.Error($"{device.Key}: tick: {e.GetType().Name}: {e.Message}");
            }
        }
    }

    /// <summary>Forces the binding check of one path now (tests; the tick rate-limits it).</summary>
    internal bool RecheckBinding(int hbaIndex, string name) =>
        _devices.TryGetValue(Key(hbaIndex, name), out var d) && CheckBinding(d, force: true);

    /// <summary>
    /// On stop: blocks every device, so that from now until the next daemon adopts it (and
    /// unblocks it) new commands get BUSY, which initiators retry, instead of entering a ring
    /// nobody serves, where the kernel fails them with NOT READY after cmd_time_out (docs/tcmu.md
    /// §12, §13). Returns how many were blocked.
    /// </summary>
    public int BlockAll()
    {
        int blocked = 0;
        foreach (var d in _devices.Values)
        {
            if (!d.Backstore.HasRingActions) continue;
            try
            {
                d.Backstore.BlockDevice(true);
                blocked++;
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                Log.Warning($"{d.Key}: could not block before stopping: {e.Message}");
            }
        }
        return blocked;
    }

    /// <summary>The devices, for the ring threads (the dictionary belongs to the control thread).</summary>
    private Device[] _deviceList = [];

    /// <summary>Ring threads: another nexus's command meets <paramref name="holder"/>'s SPC-2
    /// reservation; look at the holder's session now rather than at the next tick, so that an
    /// initiator that just logged out no longer blocks the others.</summary>
    private void CheckNexus(ItNexus holder)
    {
        foreach (var device in Volatile.Read(ref _deviceList))
            if (holder.Equals(device.Path.Nexus)) CheckSession(device);
    }

    /// <summary>An initiator whose session ended (logged out, or logged out and in again) loses its
    /// SPC-2 reservation, never its persistent ones. Any thread.</summary>
    private void CheckSession(Device device)
    {
        if (device.Binding is not { } binding || device.Watch is not { } watch || device.Path.Nexus is not { } nexus) return;
        bool ended;
        try { ended = watch.NexusEnded(binding); }
        catch (IOException) { return; }
        if (!ended) return;
        Log.Info($"{device.Key}: I_T nexus {nexus} lost");
        device.Path.Volume.Reservations.NexusLost(nexus);
    }

    /// <summary>Makes every volume's data durable (on stop).</summary>
    public void FlushAll()
    {
        foreach (var v in _volumes.Values)
        {
            try { v.Store.Flush(); }
            catch (BackingStoreException e) { Log.Error($"{v.BackingPath}: final flush failed: {e.Message}"); }
        }
    }

    /// <summary>Frees every ring whose commands are done and closes the volumes left unused. A
    /// ring still running commands (the loop could not stop them) stays mapped, and its volume
    /// open, until the process exits.</summary>
    public void Dispose()
    {
        _retiring.AddRange(_devices.Values);
        _devices.Clear();
        Volatile.Write(ref _deviceList, []);
        RetireIdle();
        if (_retiring.Count > 0)
            Log.Warning($"{_retiring.Count} ring(s) still had commands running; left mapped until exit");
        foreach (var v in Volumes) CloseVolumeIfUnused(v);
    }
}
