using TcmuSharedVolume.Diagnostics;
using TcmuSharedVolume.Linux.Tcmu;

namespace TcmuSharedVolume.Daemon;

public sealed partial class DeviceManager
{
    /// <summary>Removed devices whose ring still had commands running: freed on a later tick.</summary>
    private readonly List<Device> _retiring = new();

    /// <summary>Removed paths whose rings are not freed yet (commands still running).</summary>
    public int RetiringCount => _retiring.Count;

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
}
