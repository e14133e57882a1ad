using TcmuSharedVolume.Reservations;
using TcmuSharedVolume.Scsi;
using static TcmuSharedVolume.Tests.Reservations.ResultAssert;

namespace TcmuSharedVolume.Tests.Reservations;

/// <summary>PREEMPT / PREEMPT AND ABORT, cases A-F of docs/reservations.md §8 and §9, and what fencing relies on.</summary>
public class PreemptTests
{
    private const PersistentReservationType WE = PersistentReservationType.WriteExclusive;
    private const PersistentReservationType EA = PersistentReservationType.ExclusiveAccess;
    private const PersistentReservationType WERO = PersistentReservationType.WriteExclusiveRegistrantsOnly;
    private const PersistentReservationType WEAR = PersistentReservationType.WriteExclusiveAllRegistrants;

    private static PrTestKit Registered(params ulong[] keys)
    {
        var k = new PrTestKit(nexuses: Math.Max(3, keys.Length + 1));
        for (int i = 0; i < keys.Length; i++) Good(k.Register(k[i], 0, keys[i]));
        return k;
    }

    [Fact]
    public void CaseA_NoReservationRemovesRegistrationsWithThatKey()
    {
        var k = Registered(1, 2); // libiscsi ProutPreempt.RemoveRegistration
        uint gen = k.Generation;
        Good(k.Preempt(k[1], 2, 1, EA));
        var (g, keys) = k.ReadKeys();
        Assert.Equal([2UL], keys);
        Assert.Equal(gen + 1, g);
        Assert.Null(k.ReadReservation());
        Assert.Equal([SenseCode.RegistrationsPreempted], k.TakeUnitAttentions(k[0]));
        Assert.Empty(k.TakeUnitAttentions(k[1]));
    }

    [Fact]
    public void SelfPreemptWithoutReservationRemovesTheIssuerToo()
    {
        // fence_scsi: preempt(key, key) then re-register (docs/reservations.md §8).
        var k = Registered(5, 5, 6);
        Good(k.Preempt(k[0], 5, 5, WERO));
        Assert.Equal([6UL], k.ReadKeys().Keys);
        Assert.Empty(k.TakeUnitAttentions(k[0])); // the issuer gets no UA
        Assert.Equal([SenseCode.RegistrationsPreempted], k.TakeUnitAttentions(k[1]));
        Good(k.RegisterAndIgnore(k[0], 5));
    }

    [Fact]
    public void SelfPreemptWithReservationKeepsIssuerAndDropsOtherNexusesWithTheKey()
    {
        // libmpathpersist do_preempt_self: other paths with the same key go, the issuing path stays holder.
        var k = Registered(5, 5, 6);
        Good(k.Reserve(k[1], 5, WERO));
        Good(k.Preempt(k[0], 5, 5, WERO));
        Assert.Equal([5UL, 6UL], k.ReadKeys().Keys);
        Assert.True(k.Pr.State.IsHolder(k.Pr.State.IndexOf(k[0])));
        Assert.Equal((5UL, WERO), k.ReadReservation());
        Assert.Equal([SenseCode.RegistrationsPreempted], k.TakeUnitAttentions(k[1]));
        Assert.Empty(k.TakeUnitAttentions(k[2])); // type unchanged: no RESERVATIONS RELEASED
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void PreemptWithZeroKeyOutsideAllRegistrantsIsInvalidField(bool reserved)
    {
        var k = Registered(1, 2);
        if (reserved) Good(k.Reserve(k[0], 1, WE));
        uint gen = k.Generation;
        Check(k.Preempt(k[1], 2, 0, WE), SenseCode.InvalidFieldInParameterList);
        Assert.Equal(gen, k.Generation);
        Assert.Equal(2, k.ReadKeys().Keys.Length);
    }

    [Fact]
    public void CaseC_PreemptingTheHolderMovesTheReservationAndTellsOthersOfTypeChange()
    {
        var k = Registered(1, 2, 3);
        Good(k.Reserve(k[0], 1, WERO));
        Good(k.Preempt(k[1], 2, 1, EA));
        Assert.Equal([2UL, 3UL], k.ReadKeys().Keys);
        Assert.Equal((2UL, EA), k.ReadReservation());
        Assert.Equal([SenseCode.RegistrationsPreempted], k.TakeUnitAttentions(k[0]));
        Assert.Equal([SenseCode.ReservationsReleased], k.TakeUnitAttentions(k[2]));
        Assert.Empty(k.TakeUnitAttentions(k[1]));
    }

    [Fact]
    public void CaseC_SameTypeGivesNoReservationsReleased()
    {
        var k = Registered(1, 2, 3);
        Good(k.Reserve(k[0], 1, WERO));
        Good(k.Preempt(k[1], 2, 1, WERO));
        Assert.Empty(k.TakeUnitAttentions(k[2]));
    }

    [Fact]
    public void CaseD_PreemptingANonHolderKeyKeepsTheReservation()
    {
        var k = Registered(1, 2, 3);
        Good(k.Reserve(k[0], 1, WE));
        Good(k.Preempt(k[1], 2, 3, EA));
        Assert.Equal([1UL, 2UL], k.ReadKeys().Keys);
        Assert.Equal((1UL, WE), k.ReadReservation());
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void PreemptOfUnknownKeyConflictsAndChangesNothing(bool reserved)
    {
        var k = Registered(1, 2);
        if (reserved) Good(k.Reserve(k[0], 1, WE));
        uint gen = k.Generation;
        Conflict(k.Preempt(k[1], 2, 77, WE));
        Assert.Equal(gen, k.Generation);
    }

    [Fact]
    public void CaseE_ZeroKeyUnderAllRegistrantsLeavesOnlyTheIssuerAsHolderOfTheNewType()
    {
        var k = Registered(1, 2, 3);
        Good(k.Reserve(k[0], 1, WEAR));
        Good(k.Preempt(k[1], 2, 0, WERO));
        Assert.Equal([2UL], k.ReadKeys().Keys);
        Assert.Equal((2UL, WERO), k.ReadReservation());
        Assert.Equal([SenseCode.RegistrationsPreempted], k.TakeUnitAttentions(k[0]));
        Assert.Equal([SenseCode.RegistrationsPreempted], k.TakeUnitAttentions(k[2]));
    }

    [Fact]
    public void CaseF_KeyUnderAllRegistrantsRemovesThoseRegistrationsReservationStays()
    {
        var k = Registered(1, 2, 3);
        Good(k.Reserve(k[0], 1, WEAR));
        Good(k.Preempt(k[1], 2, 3, WE));
        Assert.Equal([1UL, 2UL], k.ReadKeys().Keys);
        Assert.Equal((0UL, WEAR), k.ReadReservation());
    }

    [Fact]
    public void UnregisteredNexusCannotPreempt()
    {
        var k = Registered(1);
        Conflict(k.Preempt(k[2], 0, 1, WE));
        Conflict(k.Preempt(k[2], 0, 1, WE, abort: true));
    }

    [Fact]
    public void PreemptAndAbortCommitsFirstThenDrainsThePreemptedNexusesBeforeGood()
    {
        // fence_scsi off: victim holds WERO; fencer preempts and aborts it.
        var k = Registered(0xA, 0xB);
        Good(k.Reserve(k[0], 0xA, WERO));
        bool? victimCouldWriteDuringDrain = null;
        bool? victimRegisteredDuringDrain = null;
        k.Drain.OnDrain = _ =>
        {
            victimCouldWriteDuringDrain = k.CanWrite(k[0]);
            victimRegisteredDuringDrain = k.Pr.State.IndexOf(k[0]) >= 0;
        };
        Good(k.Preempt(k[1], 0xB, 0xA, WERO, abort: true));
        var call = Assert.Single(k.Drain.Calls);
        Assert.Equal([k[0]], call);
        Assert.False(victimCouldWriteDuringDrain);
        Assert.False(victimRegisteredDuringDrain);
        Assert.True(k.CanRead(k[0])); // WERO: an unregistered node may still read
        Assert.True(k.CanWrite(k[1]));
        Assert.Equal((0xBUL, WERO), k.ReadReservation());
        // Only drained, nothing aborted: no COMMANDS CLEARED BY ANOTHER INITIATOR.
        Assert.Equal([SenseCode.RegistrationsPreempted], k.TakeUnitAttentions(k[0]));
    }

    [Fact]
    public void PlainPreemptDoesNotDrain()
    {
        var k = Registered(1, 2);
        Good(k.Preempt(k[1], 2, 1, WE));
        Assert.Empty(k.Drain.Calls);
    }

    [Fact]
    public void PreemptAndAbortThatRemovesOnlyTheIssuerDrainsNothing()
    {
        var k = Registered(5, 6);
        Good(k.Preempt(k[0], 5, 5, WE, abort: true));
        Assert.Empty(k.Drain.Calls);
    }

    [Fact]
    public void PreemptWithBadTypeOrScopeIsInvalidFieldInCdb()
    {
        var k = Registered(1, 2);
        Check(k.ProutRaw(k[1], 0x04, 2, PrTestKit.BasicList(2, 1)), SenseCode.InvalidFieldInCdb);
        Check(k.ProutRaw(k[1], 0x04, 1, PrTestKit.BasicList(2, 1), scope: 1), SenseCode.InvalidFieldInCdb); // docs/reservations.md §3 step 8
        Assert.Equal(2, k.ReadKeys().Keys.Length);
    }
}
