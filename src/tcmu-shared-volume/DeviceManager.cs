using TcmuSharedVolume.Diagnostics;
using TcmuSharedVolume.Linux.Configfs;
using TcmuSharedVolume.Linux.Tcmu;
using TcmuSharedVolume.Scsi;
using TcmuSharedVolume.Volumes;

namespace TcmuSharedVolume.Daemon;

/// <summary>
/// The daemon's devices: each adopted TCMU backstore becomes a path (a ring in the event loop)
/// of the volume its backing path names. Backstores on the same canonical backing path share
/// one <see cref="Volume"/>: one open backing store, one identity, one reservation table.
/// Called from the control thread only, except <see cref="TryBind"/> which any worker may call.
/// </summary>
public sealed partial class DeviceManager : IDisposable
{
    private readonly TargetConfigfs _configfs;
    private readonly RingEventLoop _loop;
    private readonly string _stateDirectory;
    private readonly IDeviceOpener _opener;
    private readonly Dictionary<string, Device> _devices = new(StringComparer.Ordinal);

    /// <summary>The devices, for the ring threads (the dictionary belongs to the control thread).</summary>
    private Device[] _deviceList = [];

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

    public int PathCount => _devices.Count;

    public string StatusLine => $"serving {VolumeCount} volume(s) over {PathCount} path(s)";

    /// <summary>The path serving a backstore, or null (tests, status).</summary>
    public VolumePath? PathOf(int hbaIndex, string name) => _devices.TryGetValue(Key(hbaIndex, name), out var d) ? d.Path : null;

    private static string Key(int hbaIndex, string name) => $"user_{hbaIndex}/{name}";

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
