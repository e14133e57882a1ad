using TcmuSharedVolume.Backends;
using TcmuSharedVolume.Daemon;
using TcmuSharedVolume.Linux.DBus;
using TcmuSharedVolume.Simulation;
using TcmuSharedVolume.Tests.Backends.Rbd;
using TcmuSharedVolume.Tests.EndToEnd;
using TcmuSharedVolume.Tests.Tcmu;

namespace TcmuSharedVolume.Tests.Daemon;

/// <summary>
/// Two daemons (host_id 1 and 2, each its own DeviceManager, LIO tree and Ceph client) serving
/// one RBD image from the real one-node Ceph: what tsvctl status and pr clear see of the shared
/// table (docs/operations.md §10).
/// </summary>
[Collection(CephCollection.Name)]
public sealed class RbdDaemonTests : IDisposable
{
    private readonly CephCluster _ceph;
    private readonly string _image;
    private readonly DaemonRig _host1 = new(hostId: 1);
    private readonly DaemonRig _host2 = new(hostId: 2);

    public RbdDaemonTests(CephCluster ceph)
    {
        _ceph = ceph;
        _image = ceph.CreateImage("16M", features: "layering");
    }

    public void Dispose()
    {
        _host1.Dispose();
        _host2.Dispose();
    }

    private string VolumeKey => $"rbd/{CephCluster.Pool}/{_image}";

    private static RingSimulator.Completion Run(SimulatedDevice d, byte[] cdb, byte[]? dataOut = null, int dataIn = 0) =>
        TwoPathRig.Await(d, TwoPathRig.Submit(d, cdb, dataOut, dataIn));

    /// <summary>The image exported on <paramref name="host"/> to one initiator; its ring.</summary>
    private SimulatedDevice Serve(DaemonRig host, string initiator)
    {
        var found = host.BackstoreWithConfig(1, "v", $"sharedvol/{VolumeKey};ceph_conf={_ceph.ConfPath}");
        host.Export(1, "v", initiator);
        Assert.Equal(0, host.Devices.Adopt(found, existing: false));
        return host.Opener.For("user_1/v").Device;
    }

    /// <summary>Node A registered (0xA1) through host 1, node B (0xB2) through host 2; their rings.</summary>
    private (SimulatedDevice A, SimulatedDevice B) ServedByBothAndRegistered()
    {
        var a = Serve(_host1, DaemonRig.NodeA);
        var b = Serve(_host2, DaemonRig.NodeB);
        Assert.Equal(0, Run(a, Cdb.PrOut(Cdb.Register), Cdb.PrOutParameters(0, 0xA1)).Status);
        Assert.Equal(0, Run(b, Cdb.PrOut(Cdb.Register), Cdb.PrOutParameters(0, 0xB2)).Status);
        return (a, b);
    }

    [Fact]
    public void StatusShowsTheTableVersionAndTheHostsThatServeTheVolume()
    {
        ServedByBothAndRegistered();

        // Through JSON, as tsvctl reads it.
        var status = AdminJsonContext.Deserialize(AdminJsonContext.Serialize(AdminStatusBuilder.Build(_host1.Devices)));
        var volume = Assert.Single(status.Volumes);
        Assert.Equal(VolumeKey, volume.BackingPath);
        Assert.Equal(2, volume.Reservations.Registrations.Count);
        var shared = volume.Shared!;
        Assert.Equal((2UL, $"{CephCluster.Pool}/tsv.pr.{_image}", (string?)null), (shared.Version, shared.TableObject, shared.HostsError));
        Assert.Equal([(1, true, "serving"), (2, false, "serving")],
            shared.Hosts.Select(h => (h.HostId ?? 0, h.ThisHost, h.State)).OrderBy(h => h.Item1));
        Assert.All(shared.Hosts, h => Assert.Equal(Environment.MachineName, h.HostName));

        // The other host sees the same table; its ports are numbered in its own range (host_id * 1024 + 1).
        var other = Assert.Single(AdminStatusBuilder.Build(_host2.Devices).Volumes);
        Assert.Equal(2UL, other.Shared!.Version);
        Assert.Equal([1025, 2049], _host2.Devices.Volumes.Single().Reservations.Snapshot().Registrations
            .Select(r => (int)r.Nexus.Target.RelativeTargetPortId).Order());
    }

    [Fact]
    public void AnAdministrativeClearOnOneHostClearsTheTableForEveryHost()
    {
        var (_, b) = ServedByBothAndRegistered();
        Assert.Equal(0, Run(b, Cdb.PrOut(Cdb.Reserve, 1), Cdb.PrOutParameters(0xB2, 0)).Status);

        var (ok, message) = AdminStatusBuilder.Clear(_host1.Devices, VolumeKey);
        Assert.True(ok, message);

        // GOOD came after host 2 applied it: its table is empty at once, and its initiator is told.
        var onHost2 = _host2.Devices.Volumes.Single();
        Assert.Empty(onHost2.Reservations.Snapshot().Registrations);
        Assert.Equal(4UL, onHost2.Reservations.ClusterVersion);
        var told = Run(b, Cdb.TestUnitReady());
        Assert.Equal((2, 0x2A, 0x03), (told.Status, told.Sense[12], told.Sense[13])); // RESERVATIONS PREEMPTED
        Assert.Equal(0, Run(b, Cdb.Write10(0, 1), new byte[512]).Status); // no reservation any more

        // Each host keeps the last table it loaded in its state directory, for its next start.
        Assert.Single(Directory.GetFiles(_host2.StateDirectory, "*.shared"));
    }

    [Fact]
    public void ClearingAVolumeThisHostDoesNotServeIsRefused()
    {
        Serve(_host1, DaemonRig.NodeA);
        var (ok, message) = AdminStatusBuilder.Clear(_host2.Devices, VolumeKey);
        Assert.False(ok);
        Assert.Contains($"no volume {VolumeKey} is being served", message);
    }
}
