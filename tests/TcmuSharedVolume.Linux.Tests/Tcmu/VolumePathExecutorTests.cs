using TcmuSharedVolume.Linux.Tcmu;
using TcmuSharedVolume.Scsi;
using TcmuSharedVolume.Tests.EndToEnd;

namespace TcmuSharedVolume.Tests.Tcmu;

/// <summary>The executor asks for the SPC-2 holder's session before judging another nexus's
/// command, so that a holder that has just logged out does not block (libiscsi Reserve6.Logout).</summary>
public sealed class VolumePathExecutorTests : IDisposable
{
    private readonly TwoPathRig _rig = new(workers: 1);

    public void Dispose() => _rig.Dispose();

    private static ScsiStatus Run(VolumePathExecutor e, params byte[] cdb)
    {
        var c = new ScsiCommand();
        c.SetCdb(cdb);
        e.Execute(c);
        return c.Status;
    }

    private static readonly byte[] Reserve6 = [0x16, 0, 0, 0, 0, 0];

    [Fact]
    public void AHolderWhoseSessionEndedNoLongerBlocksAReserve()
    {
        var asked = new List<ItNexus>();
        bool loggedOut = false;
        void Check(ItNexus holder)
        {
            asked.Add(holder);
            if (loggedOut) _rig.Volume.Reservations.NexusLost(holder);
        }
        var a = new VolumePathExecutor(_rig.PathA, checkNexus: Check);
        var b = new VolumePathExecutor(_rig.PathB, checkNexus: Check);

        Assert.Equal(ScsiStatus.Good, Run(a, Reserve6));
        Assert.Empty(asked); // no reservation held by another nexus: nothing to ask
        Assert.Equal(ScsiStatus.Good, Run(a, Reserve6));
        Assert.Empty(asked); // the holder's own commands never ask

        Assert.Equal(ScsiStatus.ReservationConflict, Run(b, Reserve6));
        Assert.Equal([_rig.Node1], asked);

        loggedOut = true; // node1 logs out; the daemon's tick has not seen it yet
        Assert.Equal(ScsiStatus.Good, Run(b, Reserve6));
        Assert.Equal(_rig.Node2, _rig.Volume.Reservations.Spc2Holder);
    }
}
