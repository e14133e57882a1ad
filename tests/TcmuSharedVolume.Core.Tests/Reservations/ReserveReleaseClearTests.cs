using TcmuSharedVolume.Reservations;
using TcmuSharedVolume.Scsi;
using static TcmuSharedVolume.Tests.Reservations.ResultAssert;

namespace TcmuSharedVolume.Tests.Reservations;

/// <summary>RESERVE, RELEASE and CLEAR (docs/reservations.md §5-§7) for every type and nexus role.</summary>
public class ReserveReleaseClearTests
{
    public static TheoryData<PersistentReservationType> AllTypes() =>
    [
        PersistentReservationType.WriteExclusive, PersistentReservationType.ExclusiveAccess,
        PersistentReservationType.WriteExclusiveRegistrantsOnly, PersistentReservationType.ExclusiveAccessRegistrantsOnly,
        PersistentReservationType.WriteExclusiveAllRegistrants, PersistentReservationType.ExclusiveAccessAllRegistrants,
    ];

    private static PrTestKit TwoRegistered()
    {
        var k = new PrTestKit();
        Good(k.Register(k[0], 0, 1));
        Good(k.Register(k[1], 0, 2));
        return k;
    }

    [Theory]
    [MemberData(nameof(AllTypes))]
    public void ReserveReadBackReleaseWithoutGenerationChange(PersistentReservationType type)
    {
        var k = TwoRegistered();
        uint gen = k.Generation;
        Good(k.Reserve(k[0], 1, type));
        Assert.Equal((type.IsAllRegistrants() ? 0UL : 1UL, type), k.ReadReservation());
        Good(k.Reserve(k[0], 1, type)); // same holder, same type: no-op
        Good(k.Release(k[0], 1, type));
        Assert.Null(k.ReadReservation());
        Assert.Equal(gen, k.Generation);
    }

    [Theory]
    [MemberData(nameof(AllTypes))]
    public void HolderReserveWithAnotherTypeConflicts(PersistentReservationType type)
    {
        var k = TwoRegistered();
        Good(k.Reserve(k[0], 1, type));
        var other = type == PersistentReservationType.WriteExclusive ? PersistentReservationType.ExclusiveAccess : PersistentReservationType.WriteExclusive;
        Conflict(k.Reserve(k[0], 1, other));
        Assert.Equal(type, k.ReadReservation()!.Value.Type);
    }

    [Theory]
    [MemberData(nameof(AllTypes))]
    public void SecondRegistrantReserve(PersistentReservationType type)
    {
        var k = TwoRegistered();
        Good(k.Reserve(k[0], 1, type));
        var r = k.Reserve(k[1], 2, type);
        // Under AR every registrant is a holder: same-type RESERVE is GOOD (docs/reservations.md §5); otherwise conflict.
        if (type.IsAllRegistrants()) Good(r); else Conflict(r);
    }

    [Theory]
    [MemberData(nameof(AllTypes))]
    public void UnregisteredNexusCannotReserveReleaseOrClear(PersistentReservationType type)
    {
        var k = TwoRegistered();
        Conflict(k.Reserve(k[2], 0, type)); // docs/reservations.md §3 step 7: no reservation yet
        Conflict(k.Release(k[2], 0, type));
        Conflict(k.Clear(k[2], 0));
        Good(k.Reserve(k[0], 1, type));
        Conflict(k.Release(k[2], 0, type));
        Conflict(k.Clear(k[2], 0));
        Assert.Equal(2, k.ReadKeys().Keys.Length);
    }

    [Theory]
    [MemberData(nameof(AllTypes))]
    public void WrongKeyConflicts(PersistentReservationType type)
    {
        var k = TwoRegistered();
        Conflict(k.Reserve(k[0], 2, type));
        Good(k.Reserve(k[0], 1, type));
        Conflict(k.Release(k[0], 99, type));
        Conflict(k.Clear(k[0], 99));
        Assert.NotNull(k.ReadReservation());
    }

    [Theory]
    [MemberData(nameof(AllTypes))]
    public void ReleaseWithWrongTypeIsInvalidRelease(PersistentReservationType type)
    {
        var k = TwoRegistered();
        Good(k.Reserve(k[0], 1, type));
        var other = type == PersistentReservationType.ExclusiveAccess ? PersistentReservationType.WriteExclusive : PersistentReservationType.ExclusiveAccess;
        Check(k.Release(k[0], 1, other), SenseCode.InvalidReleaseOfPersistentReservation); // docs/reservations.md §6
        Assert.Equal(type, k.ReadReservation()!.Value.Type);
    }

    [Theory]
    [InlineData(PersistentReservationType.WriteExclusive)]
    [InlineData(PersistentReservationType.ExclusiveAccess)]
    [InlineData(PersistentReservationType.WriteExclusiveRegistrantsOnly)]
    [InlineData(PersistentReservationType.ExclusiveAccessRegistrantsOnly)]
    public void ReleaseFromRegisteredNonHolderIsGoodAndChangesNothing(PersistentReservationType type)
    {
        var k = TwoRegistered();
        Good(k.Reserve(k[0], 1, type));
        Good(k.Release(k[1], 2, type));
        Good(k.Release(k[1], 2, PersistentReservationType.ExclusiveAccessAllRegistrants)); // not a holder: type not even looked at
        Assert.Equal((1UL, type), k.ReadReservation());
    }

    [Fact]
    public void ReleaseWithoutReservationIsGood()
    {
        var k = TwoRegistered();
        Good(k.Release(k[0], 1, PersistentReservationType.WriteExclusive));
    }

    [Theory]
    [MemberData(nameof(AllTypes))]
    public void ReleaseUnitAttentionsOnlyForRegistrantsTypes(PersistentReservationType type)
    {
        var k = TwoRegistered();
        Good(k.Reserve(k[0], 1, type));
        Good(k.Release(k[0], 1, type));
        var expected = type.IsRegistrantsType() ? new[] { SenseCode.ReservationsReleased } : [];
        Assert.Equal(expected, k.TakeUnitAttentions(k[1]));
        Assert.Empty(k.TakeUnitAttentions(k[0]));
        Assert.Empty(k.TakeUnitAttentions(k[2])); // not registered
    }

    [Theory]
    [InlineData(PersistentReservationType.WriteExclusiveAllRegistrants)]
    [InlineData(PersistentReservationType.ExclusiveAccessAllRegistrants)]
    public void AnyAllRegistrantsHolderMayReleaseForEveryone(PersistentReservationType type)
    {
        var k = TwoRegistered();
        Good(k.Reserve(k[0], 1, type));
        Good(k.Release(k[1], 2, type));
        Assert.Null(k.ReadReservation());
        Assert.Equal([SenseCode.ReservationsReleased], k.TakeUnitAttentions(k[0]));
    }

    [Theory]
    [MemberData(nameof(AllTypes))]
    public void ClearRemovesEverythingBumpsGenerationOnceAndTellsTheOthers(PersistentReservationType type)
    {
        var k = TwoRegistered();
        Good(k.Reserve(k[0], 1, type));
        uint gen = k.Generation;
        Good(k.Clear(k[1], 2));
        var (g, keys) = k.ReadKeys();
        Assert.Empty(keys);
        Assert.Null(k.ReadReservation());
        Assert.Equal(gen + 1, g);
        Assert.Equal([SenseCode.ReservationsPreempted], k.TakeUnitAttentions(k[0]));
        Assert.Empty(k.TakeUnitAttentions(k[1]));
        Assert.Empty(k.TakeUnitAttentions(k[2]));
    }

    [Fact]
    public void ScopeAndTypeAreIgnoredByClear()
    {
        var k = TwoRegistered();
        Good(k.ProutRaw(k[0], 0x03, 0x0F, PrTestKit.BasicList(1, 0), scope: 3));
        Assert.Empty(k.ReadKeys().Keys);
    }
}
