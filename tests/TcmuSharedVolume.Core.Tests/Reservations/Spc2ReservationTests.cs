using TcmuSharedVolume.Reservations;
using TcmuSharedVolume.Scsi;
using static TcmuSharedVolume.Tests.Reservations.ResultAssert;

namespace TcmuSharedVolume.Tests.Reservations;

/// <summary>SPC-2 RESERVE/RELEASE and its interplay with persistent reservations (docs/reservations.md §13).</summary>
public class Spc2ReservationTests
{
    private static readonly byte[] Reserve6 = [OperationCode.Reserve6, 0, 0, 0, 0, 0];
    private static readonly byte[] Release6 = [OperationCode.Release6, 0, 0, 0, 0, 0];
    private static readonly byte[] Reserve10 = [OperationCode.Reserve10, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    private static readonly byte[] Release10 = [OperationCode.Release10, 0, 0, 0, 0, 0, 0, 0, 0, 0];

    [Fact]
    public void TwoInitiators() // libiscsi Reserve6.2Initiators
    {
        var k = new PrTestKit();
        Good(k.Execute(k[0], Reserve6));
        Good(k.Execute(k[0], Reserve6));
        Conflict(k.Execute(k[1], Reserve6));
        Good(k.Execute(k[1], Release6)); // non-holder: no-op
        Assert.True(k.Pr.IsAllowed(k[0], [OperationCode.ModeSense6, 0, 0x3F, 0, 0xFF, 0]));
        Assert.False(k.Pr.IsAllowed(k[1], [OperationCode.ModeSense6, 0, 0x3F, 0, 0xFF, 0]));
        Conflict(k.Execute(k[1], Reserve10));
        Good(k.Execute(k[0], Release10));
        Good(k.Execute(k[1], Reserve6));
        Good(k.Execute(k[1], Release6));
        Assert.Null(k.Pr.State.Spc2Holder);
    }

    [Fact]
    public void OthersGetOnlyInquiryRequestSenseReportLunsReadCapacityAndStart()
    {
        var k = new PrTestKit();
        Good(k.Execute(k[0], Reserve6));
        bool Other(params byte[] cdb) => k.Pr.IsAllowed(k[1], cdb);
        Assert.True(Other(OperationCode.Inquiry, 0, 0, 0, 36, 0));
        Assert.True(Other(OperationCode.RequestSense, 0, 0, 0, 18, 0));
        Assert.True(Other(OperationCode.ReportLuns, 0, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0));
        Assert.True(Other(OperationCode.ReadCapacity10, 0, 0, 0, 0, 0, 0, 0, 0, 0));
        Assert.True(Other(OperationCode.ServiceActionIn16, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0));
        Assert.True(Other(OperationCode.StartStopUnit, 0, 0, 0, 0x01, 0));
        Assert.False(Other(OperationCode.StartStopUnit, 0, 0, 0, 0x00, 0));
        Assert.False(Other(OperationCode.TestUnitReady, 0, 0, 0, 0, 0));
        Assert.False(Other(PrTestKit.Read10));
        Assert.False(Other(PrTestKit.Write10));
        Assert.False(Other(0x48, 0x01, 0, 0, 0, 0, 0, 0, 0, 0)); // SANITIZE (libiscsi Sanitize.Reservations)
        Assert.True(k.Pr.IsAllowed(k[0], PrTestKit.Write10));
    }

    [Fact]
    public void Spc2ReservationBlocksEveryPersistentReserveCommandFromAnyone()
    {
        var k = new PrTestKit();
        Good(k.Execute(k[0], Reserve6));
        Conflict(k.PrIn(k[0], 0x00));
        Conflict(k.PrIn(k[1], 0x02));
        Conflict(k.Register(k[0], 0, 1));
        Conflict(k.RegisterAndIgnore(k[1], 1));
        Good(k.Execute(k[0], Release6));
        Good(k.Register(k[0], 0, 1));
    }

    [Fact]
    public void Spc2ConflictsWithRegistrationsUnlessCrhApplies()
    {
        var k = new PrTestKit();
        Good(k.Register(k[0], 0, 1));
        Conflict(k.Execute(k[1], Reserve6)); // registrations exist, no PR reservation
        Conflict(k.Execute(k[0], Reserve6));
        Good(k.Register(k[1], 0, 2));
        Good(k.Reserve(k[0], 1, PersistentReservationType.WriteExclusiveRegistrantsOnly));
        Good(k.Execute(k[0], Reserve6)); // CRH: PR holder gets GOOD, nothing changes
        Good(k.Execute(k[1], Reserve6)); // registrant under an RO reservation: GOOD
        Good(k.Execute(k[1], Release6));
        Conflict(k.Execute(k[2], Reserve6)); // unregistered
        Assert.Null(k.Pr.State.Spc2Holder);
    }

    [Fact]
    public void CrhUnderWriteExclusiveOnlyForTheHolder()
    {
        var k = new PrTestKit();
        Good(k.Register(k[0], 0, 1));
        Good(k.Register(k[1], 0, 2));
        Good(k.Reserve(k[0], 1, PersistentReservationType.WriteExclusive));
        Good(k.Execute(k[0], Reserve6));
        Conflict(k.Execute(k[1], Reserve6));
    }

    [Fact]
    public void LunResetAndNexusLossReleaseSpc2ButNeverPersistentReservations()
    {
        var k = new PrTestKit();
        Good(k.Execute(k[0], Reserve6));
        k.Pr.NexusLost(k[1]); // not the holder
        Assert.NotNull(k.Pr.State.Spc2Holder);
        k.Pr.NexusLost(k[0]);
        Assert.Null(k.Pr.State.Spc2Holder);
        Good(k.Execute(k[0], Reserve6));
        k.Pr.LunReset(k[1]);
        Assert.Null(k.Pr.State.Spc2Holder);

        Good(k.Register(k[0], 0, 1));
        Good(k.Reserve(k[0], 1, PersistentReservationType.ExclusiveAccess));
        k.Pr.LunReset(k[0]);
        k.Pr.NexusLost(k[0]);
        Assert.Equal((1UL, PersistentReservationType.ExclusiveAccess), k.ReadReservation());
        Assert.Equal([1UL], k.ReadKeys().Keys);
    }

    [Fact]
    public void ThirdPartyReserve10IsRefused()
    {
        var k = new PrTestKit();
        Check(k.Execute(k[0], [OperationCode.Reserve10, 0x10, 0, 1, 0, 0, 0, 0, 0, 0]), SenseCode.InvalidFieldInCdb);
        Assert.Null(k.Pr.State.Spc2Holder);
    }
}
