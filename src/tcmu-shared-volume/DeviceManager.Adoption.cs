using TcmuSharedVolume.Backends;
using TcmuSharedVolume.Diagnostics;
using TcmuSharedVolume.Linux.Configfs;
using TcmuSharedVolume.Linux.Systemd;
using TcmuSharedVolume.Linux.Tcmu;
using TcmuSharedVolume.Volumes;
using DiscoveredDevice = TcmuSharedVolume.Linux.Discovery.UioDevice;

namespace TcmuSharedVolume.Daemon;

public sealed partial class DeviceManager
{
    /// <summary>Devices refused, with the errno given: a rescan does not log the same refusal every second.</summary>
    private readonly Dictionary<string, (string DevConfig, int Errno)> _refused = new(StringComparer.Ordinal);

    /// <summary>A refusal with its reason and the errno for the netlink reply.</summary>
    private sealed class RefusedException(string reason, int errno) : Exception(reason)
    {
        public int Errno { get; } = errno;
    }

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
                // Every reservation change of the volume becomes a journal entry (docs/operations.md §12).
                volume.Reservations.Audit ??= new JournalReservationAudit(volume.BackingPath, volume.Identity.UnitSerial);
            }
            catch (Exception e) when (e is not RefusedException)
            {
                throw new RefusedException($"cannot open volume {config.Path}: {e.Message}", ErrnoOf(e));
            }
            if (volume.BlockSize != blockSize)
                throw new RefusedException($"hw_block_size {blockSize} differs from the volume's {volume.BlockSize} (set by its other paths)", -22);
            if (config.AbortTimeout is { } abortTimeout && volume.Paths.Count == 0)
                volume.Reservations.AbortDrainTimeout = abortTimeout;
            // ALUA: this host's target port group and the access states; as serial=, the first
            // path of a volume fixes them (docs/operations.md §15).
            if (volume.Paths.Count == 0)
                volume.PortGroups.Configure(_configfs.HostNumber, config.OptimizedHost);
            else if (config.OptimizedHost != volume.PortGroups.OptimizedGroup)
                Log.Warning($"{key}: optimized_host={config.OptimizedHost?.ToString() ?? "(none)"} ignored, volume {volume.Identity.UnitSerial} serves with " +
                            (volume.PortGroups.OptimizedGroup is { } g ? $"optimized_host={g}" : "every target port group Active/Optimized") + " (set by its other paths)");

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
}
