using TcmuSharedVolume.Backends;
using TcmuSharedVolume.Daemon;
using TcmuSharedVolume.Linux.Configfs;
using TcmuSharedVolume.Linux.Tcmu;
using TcmuSharedVolume.Tests.Configfs;
using TcmuSharedVolume.Tests.Tcmu;
using DiscoveredDevice = TcmuSharedVolume.Linux.Discovery.UioDevice;

namespace TcmuSharedVolume.Tests.Daemon;

/// <summary>A ring "mapping" over the ring simulator. Dispose only records that the daemon freed
/// it (and frees the ring's iovec arrays); the simulated memory stays until the rig goes, so a
/// test can still read what the kernel side received.</summary>
internal sealed class SimulatedMapping(SimulatedDevice device) : IRingMapping
{
    private int _disposed;

    public SimulatedDevice Device => device;
    public TcmuRing Ring => device.Ring;
    public IRingEventSource Events => device.Source;
    public bool Disposed => Volatile.Read(ref _disposed) != 0;

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) throw new InvalidOperationException($"{device.Ring.Name}: mapping freed twice");
        device.Ring.Dispose();
    }
}

/// <summary>Opens simulated rings instead of /dev/uioN, real backing files (optionally wrapped),
/// and fails on demand.</summary>
internal sealed class FakeOpener : IDeviceOpener
{
    public List<SimulatedMapping> Mappings { get; } = new();
    public Func<DiscoveredDevice, Exception?> RingFailure { get; set; } = _ => null;
    public Func<IBackingStore, IBackingStore> WrapStore { get; set; } = s => s;
    public List<IBackingStore> Stores { get; } = new();

    public IRingMapping OpenRing(DiscoveredDevice found, string name)
    {
        if (RingFailure(found) is { } e) throw e;
        var mapping = new SimulatedMapping(new SimulatedDevice(name, dataBlocks: 64));
        Mappings.Add(mapping);
        return mapping;
    }

    IBackingStore IDeviceOpener.WrapStore(IBackingStore opened)
    {
        var store = WrapStore(opened);
        Stores.Add(store);
        return store;
    }

    public SimulatedMapping For(string key) => Mappings.Last(m => m.Ring.Name == key);
}

/// <summary>A <see cref="DeviceManager"/> over a fake LIO tree, simulated rings and a real event loop.</summary>
internal sealed class DaemonRig : IDisposable
{
    public const string Target = "iqn.2003-01.org.linux-iscsi.storage1.x8664:sn.0123456789ab";
    public const string NodeA = "iqn.1994-05.com.redhat:node-a";
    public const string NodeB = "iqn.1994-05.com.redhat:node-b";

    /// <param name="hostId">host_id of the daemon's configuration (one of several hosts serving an RBD volume).</param>
    public DaemonRig(int hostId = 0)
    {
        Directory = System.IO.Directory.CreateTempSubdirectory("tsv-daemon-").FullName;
        StateDirectory = Path.Combine(Directory, "state");
        Configfs = new TargetConfigfs(Lio.Root, Lio.ModuleParameters) { HostNumber = hostId };
        Loop = new RingEventLoop(workerCount: 2);
        Devices = new DeviceManager(Configfs, Loop, StateDirectory, Opener);
    }

    public FakeLio Lio { get; } = new();
    public FakeOpener Opener { get; } = new();
    public string Directory { get; }
    public string StateDirectory { get; }
    public TargetConfigfs Configfs { get; }
    public RingEventLoop Loop { get; }
    public DeviceManager Devices { get; }

    public string Image(string name) => Path.Combine(Directory, name);

    /// <summary>A user backstore in configfs whose cfgstring serves <paramref name="image"/>, and the
    /// device discovery would report for it.</summary>
    public DiscoveredDevice Backstore(int hba, string name, string image, string options = ";size=16M") =>
        BackstoreWithConfig(hba, name, $"sharedvol/{Image(image)}{options}");

    /// <summary>A user backstore in configfs with this cfgstring (an RBD image, say), and its device.</summary>
    public DiscoveredDevice BackstoreWithConfig(int hba, string name, string config)
    {
        Lio.Backstore(hba, name, config);
        return new DiscoveredDevice(hba, hba, hba, name, config, 1 << 20);
    }

    /// <summary>An iSCSI TPG where <paramref name="initiator"/>'s ACL maps LUN 0 to the backstore.</summary>
    public (string Tpg, string Lun) Export(int hba, string name, string initiator, ushort tpgt = 1)
    {
        var tpg = Lio.Tpg("iscsi", Target, tpgt);
        var lun = Lio.Lun(tpg, hba, hba, name, rtpi: tpgt);
        Lio.Acl(tpg, initiator, 0, lun);
        return (tpg, lun);
    }

    public string BlockDevState(int hba, string name) =>
        File.ReadAllText(Path.Combine(Lio.Root, "core", $"user_{hba}", name, "action", "block_dev")).Trim();

    public void Dispose()
    {
        Loop.Stop(TimeSpan.FromSeconds(10));
        Devices.Dispose();
        Loop.Dispose();
        foreach (var m in Opener.Mappings)
        {
            m.Device.Source.Dispose();
            m.Device.Sim.Dispose();
        }
        Lio.Dispose();
        System.IO.Directory.Delete(Directory, recursive: true);
    }
}
