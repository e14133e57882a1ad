using TcmuSharedVolume.Reservations;
using TcmuSharedVolume.Scsi;
using static TcmuSharedVolume.Tests.Reservations.ResultAssert;

namespace TcmuSharedVolume.Tests.Reservations;

/// <summary>REGISTER AND MOVE (docs/reservations.md §10).</summary>
public class RegisterAndMoveTests
{
    private const PersistentReservationType WE = PersistentReservationType.WriteExclusive;

    private static PrTestKit Held(PersistentReservationType type = WE)
    {
        var k = new PrTestKit(nexuses: 3);
        Good(k.Register(k[0], 0, 1));
        Good(k.Reserve(k[0], 1, type));
        return k;
    }

    private static byte[] Tid(int node, string? isid = null) => PrTestKit.IscsiTid(PrTestKit.InitiatorName(node), isid);

    private static CommandResult Move(PrTestKit k, ItNexus issuer, ulong rk, ulong sark, ushort rtpi, byte[] tid, bool unreg = false, bool aptpl = false) =>
        k.ProutRaw(issuer, 0x07, 0, PrTestKit.MoveList(rk, sark, rtpi, tid, unreg, aptpl));

    [Fact]
    public void MovesReservationWithTypeToTheDestinationAndRegistersIt()
    {
        var k = Held(PersistentReservationType.ExclusiveAccessRegistrantsOnly);
        uint gen = k.Generation;
        Good(Move(k, k[0], 1, 9, 1, Tid(1, "400001370001"), aptpl: true));
        Assert.Equal((9UL, PersistentReservationType.ExclusiveAccessRegistrantsOnly), k.ReadReservation());
        Assert.Equal([1UL, 9UL], k.ReadKeys().Keys);
        Assert.Equal(gen + 1, k.Generation);
        Assert.True(k.Pr.State.IsHolder(k.Pr.State.IndexOf(k[1])));
        Assert.False(k.Pr.State.IsHolder(k.Pr.State.IndexOf(k[0])));
        Assert.Equal(1, k.PrIn(k[0], 0x02).Data[3] & 1); // APTPL from byte 17
    }

    [Fact]
    public void UnregUnregistersTheIssuer()
    {
        var k = Held();
        Good(Move(k, k[0], 1, 9, 1, Tid(1), unreg: true));
        Assert.Equal([9UL], k.ReadKeys().Keys);
    }

    [Fact]
    public void ExistingDestinationRegistrationGetsTheNewKey()
    {
        var k = Held();
        Good(k.Register(k[1], 0, 4));
        Good(Move(k, k[0], 1, 9, 1, Tid(1)));
        Assert.Equal([1UL, 9UL], k.ReadKeys().Keys);
    }

    [Fact]
    public void UnregisteredOrWrongKeyConflicts()
    {
        var k = Held();
        Conflict(Move(k, k[2], 0, 9, 1, Tid(1)));
        Conflict(Move(k, k[0], 2, 9, 1, Tid(1)));
    }

    [Fact]
    public void UnregisteredWithoutReservationConflicts() // docs/reservations.md §3 step 7
    {
        var k = new PrTestKit();
        Conflict(Move(k, k[0], 0, 9, 1, Tid(1)));
    }

    [Fact]
    public void NoReservationIsInvalidFieldInCdb()
    {
        var k = new PrTestKit();
        Good(k.Register(k[0], 0, 1));
        Check(Move(k, k[0], 1, 9, 1, Tid(1)), SenseCode.InvalidFieldInCdb);
    }

    [Fact]
    public void NonHolderOrAllRegistrantsConflicts()
    {
        var k = Held();
        Good(k.Register(k[1], 0, 2));
        Conflict(Move(k, k[1], 2, 9, 1, Tid(2)));
        var ar = Held(PersistentReservationType.WriteExclusiveAllRegistrants);
        Conflict(Move(ar, ar[0], 1, 9, 1, Tid(1)));
    }

    [Fact]
    public void ZeroServiceActionKeyIsInvalidFieldInParameterList() // docs/reservations.md §10
    {
        var k = Held();
        Check(Move(k, k[0], 1, 0, 1, Tid(1)), SenseCode.InvalidFieldInParameterList);
    }

    [Theory]
    [InlineData(2, 1)]   // unknown relative target port
    [InlineData(1, 9)]   // unknown initiator
    [InlineData(1, 0)]   // the issuer itself
    public void BadDestinationIsInvalidFieldInParameterList(ushort rtpi, int node)
    {
        var k = Held();
        uint gen = k.Generation;
        Check(Move(k, k[0], 1, 9, rtpi, Tid(node)), SenseCode.InvalidFieldInParameterList);
        Assert.Equal(gen, k.Generation);
        Assert.Equal((1UL, WE), k.ReadReservation());
    }

    [Fact]
    public void TransportIdLengthMismatchIsInvalidFieldInParameterList()
    {
        var k = Held();
        var list = PrTestKit.MoveList(1, 9, 1, Tid(1));
        list[23] += 4;
        Check(k.ProutRaw(k[0], 0x07, 0, list), SenseCode.InvalidFieldInParameterList);
    }
}
