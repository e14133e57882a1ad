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
    private readonly TargetConfigfs _configfs;
    private readonly RingEventLoop _loop;
    private readonly string _stateDirectory;
    private readonly Dictionary<string, Volume> _volumes = new(StringComparer.Ordinal);
    private readonly Dictionary<string, Device> _devices = new(StringComparer.Ordinal);
    private readonly Lock _bindLock = new();

    public DeviceManager(TargetConfigfs configfs, RingEventLoop loop, string stateDirectory)
    {
        _configfs = configfs;
        _loop = loop;
        _stateDirectory = stateDirectory;
    }

    /// <summary>One adopted backstore: its uio mapping, ring and path.</summary>
    private sealed class Device(string key, UioDevice uio, TcmuRing ring, VolumePath path, UserBackstore backstore,
        VolumeConfig config)
    {
        public readonly string Key = key;
        public readonly UioDevice Uio = uio;
        public readonly TcmuRing Ring = ring;
        public readonly VolumePath Path = path;
        public readonly UserBackstore Backstore = backstore;
        public readonly VolumeConfig Config = config;
        public long NextBindAttempt;
        public NexusSessionWatch? Watch;
        public NexusBinding? Binding;
    }

    public int VolumeCount => _volumes.Count;
    public int PathCount => _devices.Count;

    /// <summary>A snapshot: the D-Bus thread reads it while the control thread adopts devices.</summary>
    public Volume[] Volumes
    {
        get { lock (_volumes) return [.. _volumes.Values]; }
    }

    public string StatusLine => $"serving {VolumeCount} volume(s) over {PathCount} path(s)";

    /// <summary>
    /// Adopts one sharedvol device. <paramref name="existing"/> is true for devices found at
    /// start-up (a previous daemon may have left commands in the ring: reset it so the kernel
    /// fails them with BUSY and the initiators retry, tcmu-abi.md §4.10), false for a device
    /// announced by netlink while its enable is still in progress (its ring is new, and the
    /// ring actions are refused until the enable completes).
    /// Returns 0, or a negative errno for the netlink reply, with the reason logged.
    /// </summary>
    public int Adopt(DiscoveredDevice found, bool existing)
    {
        string key = $"user_{found.HbaIndex}/{found.DeviceName}";
        if (_devices.ContainsKey(key)) return 0;
        long t0 = Environment.TickCount64;

        if (!VolumeConfig.TryParse(found.DevConfig, out var config, out var parseError))
            return Refuse(key, $"config string '{found.DevConfig}' is not valid: {parseError}", -22);
        var (valid, reason) = config.Validate();
        if (!valid)
            return Refuse(key, reason ?? "invalid configuration", -22);

        var backstore = _configfs.Backstore(found.HbaIndex, found.DeviceName);
        // Without pgr_support=0 the kernel answers PR from its own per-backstore tables and does
        // its own conflict checks: two paths of one volume would disagree (DESIGN.md §5).
        var (prOk, prReason) = backstore.EnablePrPassthrough();
        if (!prOk)
            return Refuse(key, $"cannot take reservations from the kernel: {prReason}", -95);
        var (tmrOk, tmrReason) = backstore.EnableTmrNotification();
        if (!tmrOk)
            Log.Warning($"{key}: TMR notification not enabled ({tmrReason}); LUN RESET will not break SPC-2 reservations on this path");

        int blockSize = backstore.HwBlockSize ?? 512;
        Volume volume;
        try
        {
            volume = GetOrOpenVolume(config, blockSize);
        }
        catch (Exception e) when (e is IOException or ArgumentException or UnauthorizedAccessException or InvalidDataException)
        {
            return Refuse(key, $"cannot open volume {config.Path}: {e.Message}", -5);
        }
        if (config.AbortTimeout is { } abortTimeout && volume.Paths.Count == 0)
            volume.Reservations.AbortDrainTimeout = abortTimeout;
        if (volume.BlockSize != blockSize)
        {
            CloseVolumeIfUnused(volume);
            return Refuse(key, $"hw_block_size {blockSize} differs from the volume's {volume.BlockSize} (set by its other paths)", -22);
        }

        if (existing && backstore.HasRingActions)
        {
            var (resetOk, resetReason) = backstore.BlockAndResetRing();
            if (!resetOk) Log.Warning($"{key}: could not reset the ring: {resetReason}");
        }

        UioDevice uio;
        try
        {
            uio = UioDevice.Open(UioDevice.ReadInfo("/sys/class/uio", found.UioIndex));
        }
        catch (Exception e) when (e is IOException or InvalidOperationException or UnauthorizedAccessException)
        {
            Unblock(backstore, existing);
            CloseVolumeIfUnused(volume);
            return Refuse(key, $"cannot map /dev/uio{found.UioIndex}: {e.Message}", -5);
        }

        TcmuRing ring;
        unsafe
        {
            try
            {
                ring = new TcmuRing(uio.Base, uio.Length, uio, key);
            }
            catch (InvalidDataException e)
            {
                uio.Dispose();
                Unblock(backstore, existing);
                CloseVolumeIfUnused(volume);
                return Refuse(key, $"ring of /dev/uio{found.UioIndex} is unusable: {e.Message}", -22);
            }
        }

        var binding = _configfs.ResolveNexus(found.HbaIndex, found.DeviceName, config);
        if (binding.Warning is { } w) Log.Warning($"{key}: {w}");
        var path = volume.AddPath(key, binding.Nexus, binding.UnboundReason);
        var device = new Device(key, uio, ring, path, backstore, config) { Binding = binding };
        device.Watch = new NexusSessionWatch(_configfs);
        _devices[key] = device;
        Volatile.Write(ref _deviceList, [.. _devices.Values]);
        _loop.Add(ring, uio, new VolumePathExecutor(path, () => TryBind(device, force: true), CheckNexus));
        Unblock(backstore, existing);

        Log.Notice(path.Nexus is { } n
            ? $"{key}: serving volume {volume.Identity.UnitSerial} ({config.Path}) for {n}"
            : $"{key}: serving volume {volume.Identity.UnitSerial} ({config.Path}), not yet bound to an initiator: {path.UnboundReason}");
        Log.Info($"{key}: adopted in {Environment.TickCount64 - t0} ms{(existing ? " (existing ring" + (backstore.HasRingActions ? ", reset)" : ")") : "")}");
        return 0;
    }

    private static void Unblock(UserBackstore backstore, bool existing)
    {
        if (!existing || !backstore.HasRingActions) return;
        try { backstore.BlockDevice(false); }
        catch (IOException e) { Log.Warning($"{backstore.DisplayName}: could not unblock: {e.Message}"); }
    }

    private static int Refuse(string key, string reason, int errno)
    {
        Log.Error($"{key}: not served: {reason}");
        return errno;
    }

    private Volume GetOrOpenVolume(VolumeConfig config, int blockSize)
    {
        string canonical = config.ResolveCanonicalPath();
        if (_volumes.TryGetValue(canonical, out var existing))
        {
            if (config.Serial is { } s && s != existing.Identity.UnitSerial)
                Log.Warning($"{canonical}: serial={s} ignored, the volume already serves as {existing.Identity.UnitSerial}");
            return existing;
        }

        config.CreateIfMissing();
        var store = config.Rbd is { } rbd ? RbdStore.Open(rbd) : BackingStores.Open(canonical, new BackingStoreOptions
        {
            CreateSizeBytes = config.SizeBytes,
            Preallocate = config.Preallocate,
            DirectIo = config.Direct,
        });
        try
        {
            var identity = config.Serial is { } serial ? new VolumeIdentity(serial) : VolumeIdentity.FromBackingPath(canonical);
            Directory.CreateDirectory(_stateDirectory);
            var reservations = new FileReservationStore(_stateDirectory, identity.UnitSerial);
            var volume = new Volume(canonical, store, blockSize, identity, reservations);
            lock (_volumes) _volumes[canonical] = volume;
            return volume;
        }
        catch
        {
            store.Dispose();
            throw;
        }
    }

    private void CloseVolumeIfUnused(Volume volume)
    {
        if (volume.Paths.Count != 0) return;
        lock (_volumes) _volumes.Remove(volume.BackingPath);
        volume.Dispose();
    }

    /// <summary>Stops serving a backstore (netlink REMOVED, or the uio device went away).</summary>
    public int Remove(int hbaIndex, string name)
    {
        string key = $"user_{hbaIndex}/{name}";
        if (!_devices.Remove(key, out var device)) return 0;
        Volatile.Write(ref _deviceList, [.. _devices.Values]);
        _loop.Remove(device.Ring, TimeSpan.FromSeconds(30));
        device.Ring.Dispose();
        device.Uio.Dispose();
        var volume = device.Path.Volume;
        volume.RemovePath(device.Path);
        CloseVolumeIfUnused(volume);
        Log.Notice($"{key}: removed");
        return 0;
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
            catch (IOException e)
            {
                device.Path.SetUnboundReason($"configfs: {e.Message}");
                return;
            }
            if (binding.Nexus is { } nexus)
            {
                device.Binding = binding;
                if (device.Path.Bind(nexus)) Log.Notice($"{device.Key}: bound to {nexus}");
            }
            else if (binding.UnboundReason is { } r)
            {
                device.Path.SetUnboundReason(r);
            }
        }
    }

    /// <summary>
    /// Control-thread tick: binds paths that are still unbound and detects I_T nexus loss
    /// (TCMU sends no logout notice): an initiator whose session went away loses its SPC-2
    /// reservation, never its persistent ones.
    /// </summary>
    public void Tick()
    {
        RemoveLostRings();
        foreach (var device in _devices.Values)
        {
            if (device.Path.Nexus is null)
            {
                TryBind(device);
                continue;
            }
            CheckSession(device);
        }
    }

    /// <summary>
    /// On stop: blocks every device, so that from now until the next daemon adopts it (and
    /// unblocks it) new commands get BUSY, which initiators retry, instead of entering a ring
    /// nobody serves, where the kernel fails them with NOT READY after cmd_time_out (tcmu-abi.md
    /// §4.9, §4.10). Returns how many were blocked.
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

    public void Dispose()
    {
        foreach (var d in _devices.Values)
        {
            d.Ring.Dispose();
            d.Uio.Dispose();
        }
        _devices.Clear();
        foreach (var v in _volumes.Values) v.Dispose();
        _volumes.Clear();
    }
}
