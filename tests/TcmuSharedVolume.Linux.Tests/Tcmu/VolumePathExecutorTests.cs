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

    private static byte[] Cdb(byte op) => [op, 0, 0, 0, 0, 0];

    [Fact]
    public void AReserveTakenInANewSessionIsNotReleasedForTheOldOne()
    {
        // node1's first session ended unseen (libiscsi logs out and in between suites), then
        // node1 reserves in its new session: node2 must still meet the reservation.
        var ended = new HashSet<ItNexus> { _rig.Node1 };
        void Check(ItNexus n)
        {
            if (ended.Remove(n)) _rig.Volume.Reservations.NexusLost(n);
        }
        var a = new VolumePathExecutor(_rig.PathA, checkNexus: Check);
        var b = new VolumePathExecutor(_rig.PathB, checkNexus: Check);
        Assert.Equal(ScsiStatus.Good, Run(a, Reserve6));
        Assert.Equal(ScsiStatus.ReservationConflict, Run(b, Reserve6));
        Assert.Equal(_rig.Node1, _rig.Volume.Reservations.Spc2Holder);
    }

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
        Assert.Equal([_rig.Node1], asked); // its own session, before the reservation is taken
        asked.Clear();
        Assert.Equal(ScsiStatus.Good, Run(a, Cdb(0x00)));
        Assert.Empty(asked); // the holder's other commands never ask

        Assert.Equal(ScsiStatus.ReservationConflict, Run(b, Reserve6));
        Assert.Equal([_rig.Node2, _rig.Node1], asked);

        loggedOut = true; // node1 logs out; the daemon's tick has not seen it yet
        Assert.Equal(ScsiStatus.Good, Run(b, Reserve6));
        Assert.Equal(_rig.Node2, _rig.Volume.Reservations.Spc2Holder);
    }
}
