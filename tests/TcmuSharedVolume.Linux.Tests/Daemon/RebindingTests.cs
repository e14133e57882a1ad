using TcmuSharedVolume.Tests.Configfs;
using TcmuSharedVolume.Tests.EndToEnd;
using TcmuSharedVolume.Simulation;
using TcmuSharedVolume.Tests.Tcmu;

namespace TcmuSharedVolume.Tests.Daemon;

/// <summary>A path's binding is not checked once and trusted forever: LIO's configuration can
/// change under a bound path so that a second initiator reaches its ring.</summary>
public sealed class RebindingTests : IDisposable
{
    private readonly DaemonRig _rig = new();

    public void Dispose() => _rig.Dispose();

    private static RingSimulator.Completion Run(SimulatedDevice d, byte[] cdb, byte[]? dataOut = null, int dataIn = 0) =>
        TwoPathRig.Await(d, TwoPathRig.Submit(d, cdb, dataOut, dataIn));

    /// <summary>A bound path with a registration of node A's key 0xA1 made through it.</summary>
    private (string Tpg, string Lun, SimulatedDevice Ring) BoundAndRegistered()
    {
        var found = _rig.Backstore(1, "v", "v.img");
        var (tpg, lun) = _rig.Export(1, "v", DaemonRig.NodeA);
        Assert.Equal(0, _rig.Devices.Adopt(found, existing: false));
        Assert.Equal(DaemonRig.NodeA, _rig.Devices.PathOf(1, "v")!.Nexus!.Initiator.Name);
        var ring = _rig.Opener.For("user_1/v").Device;
        Assert.Equal(0, Run(ring, Cdb.PrOut(Cdb.Register), Cdb.PrOutParameters(0, 0xA1)).Status);
        Assert.False(_rig.Devices.RecheckBinding(1, "v")); // nothing changed yet
        return (tpg, lun, ring);
    }

    private void AssertUnboundAndPrRefused(SimulatedDevice ring, string reason)
    {
        var path = _rig.Devices.PathOf(1, "v")!;
        Assert.Null(path.Nexus);
        Assert.Contains(reason, path.UnboundReason);
        // PR OUT: NOT READY, LOGICAL UNIT NOT READY, MANUAL INTERVENTION REQUIRED.
        var refused = Run(ring, Cdb.PrOut(Cdb.Register), Cdb.PrOutParameters(0xA1, 0xB2));
        Assert.Equal(2, refused.Status);
        Assert.Equal(0x2, refused.Sense[2] & 0xF);
        Assert.Equal(0x04, refused.Sense[12]);
        Assert.Equal(0x03, refused.Sense[13]);
        // The registration made while bound stays in the table: it belongs to node A.
        Assert.Contains(path.Volume.Reservations.Snapshot().Registrations, r => r.Key == 0xA1);
        // Data I/O still works.
        Assert.Equal(0, Run(ring, Cdb.TestUnitReady()).Status);
    }

    [Fact]
    public void ASecondAclMappingTheSameLunUnbindsThePath()
    {
        var (tpg, lun, ring) = BoundAndRegistered();
        _rig.Lio.Acl(tpg, DaemonRig.NodeB, 0, lun);

        Assert.True(_rig.Devices.RecheckBinding(1, "v"));
        AssertUnboundAndPrRefused(ring, "mapped by 2 ACLs");

        // The tick does not bind it again while the ambiguity lasts.
        _rig.Devices.Tick();
        Assert.Null(_rig.Devices.PathOf(1, "v")!.Nexus);
    }

    [Fact]
    public void DemoModeSwitchedOnUnbindsThePath()
    {
        var (tpg, _, ring) = BoundAndRegistered();
        FakeLio.Write(tpg, "attrib/generate_node_acls", "1\n");

        Assert.True(_rig.Devices.RecheckBinding(1, "v"));
        AssertUnboundAndPrRefused(ring, "demo mode");
    }

    [Fact]
    public void APathIsNeverSwitchedToAnotherInitiatorInPlace()
    {
        var (tpg, lun, ring) = BoundAndRegistered();
        // The LUN moves from node A's ACL to node B's.
        Directory.Delete(Path.Combine(tpg, "acls", DaemonRig.NodeA), recursive: true);
        _rig.Lio.Acl(tpg, DaemonRig.NodeB, 0, lun);

        Assert.True(_rig.Devices.RecheckBinding(1, "v"));
        AssertUnboundAndPrRefused(ring, $"now maps this backstore to {DaemonRig.NodeB}");
        _rig.Devices.Tick();
        Assert.Null(_rig.Devices.PathOf(1, "v")!.Nexus);
    }

    [Fact]
    public void APathUnboundByAnAmbiguityIsBoundAgainToItsOwnInitiatorOnceItIsGone()
    {
        var (tpg, lun, ring) = BoundAndRegistered();
        _rig.Lio.Acl(tpg, DaemonRig.NodeB, 0, lun);
        Assert.True(_rig.Devices.RecheckBinding(1, "v"));
        Directory.Delete(Path.Combine(tpg, "acls", DaemonRig.NodeB), recursive: true);

        // A reservation command forces a bind attempt: node A again, with its registration.
        Assert.Equal(0, Run(ring, Cdb.PrOut(Cdb.Register), Cdb.PrOutParameters(0xA1, 0xA2)).Status);
        Assert.Equal(DaemonRig.NodeA, _rig.Devices.PathOf(1, "v")!.Nexus!.Initiator.Name);
    }
}
