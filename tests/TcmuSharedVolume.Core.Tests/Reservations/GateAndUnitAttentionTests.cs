using TcmuSharedVolume.Reservations;
using TcmuSharedVolume.Scsi;
using static TcmuSharedVolume.Tests.Reservations.ResultAssert;

namespace TcmuSharedVolume.Tests.Reservations;

public class GateAndUnitAttentionTests
{
    [Fact]
    public void GateAllocatesNothingWith128RegistrationsUnderWero()
    {
        var k = new PrTestKit(nexuses: 128);
        for (int i = 0; i < 128; i++) Good(k.Register(k[i], 0, (ulong)i + 1));
        Good(k.Reserve(k[0], 1, PersistentReservationType.WriteExclusiveRegistrantsOnly));
        var stranger = PrTestKit.Nexus(500);
        var sameIdentityOtherObject = PrTestKit.Nexus(77, isid: "400001379999");
        byte[] write = PrTestKit.Write10;
        bool sink = false;
        for (int i = 0; i < 100; i++) sink ^= k.Pr.IsAllowed(k[i % 128], write); // warm up
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 10_000; i++)
        {
            sink ^= k.Pr.IsAllowed(k[i % 128], write);
            sink ^= k.Pr.IsAllowed(stranger, write);
            sink ^= k.Pr.IsAllowed(sameIdentityOtherObject, write);
            sink ^= k.Pr.IsAllowed(null, write);
        }
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.Equal(0, allocated);
        Assert.True(k.Pr.IsAllowed(sameIdentityOtherObject, write)); // found by value, not by reference
        Assert.False(k.Pr.IsAllowed(stranger, write));
        GC.KeepAlive(sink);
    }

    [Fact]
    public void UnitAttentionsAreDeliveredOldestFirstWithoutDuplicatesAndBounded()
    {
        var k = new PrTestKit();
        k.Pr.AddUnitAttentionForAll(SenseCode.CapacityDataHasChanged);
        k.Pr.AddUnitAttentionForAll(SenseCode.CapacityDataHasChanged);
        k.Pr.AddUnitAttentionForAll(SenseCode.ModeParametersChanged);
        Assert.Equal([SenseCode.CapacityDataHasChanged, SenseCode.ModeParametersChanged], k.TakeUnitAttentions(k[1]));
        Assert.Empty(k.TakeUnitAttentions(k[1]));

        for (byte i = 0; i < VolumeReservations.MaxUnitAttentionsPerNexus + 3; i++)
            k.Pr.AddUnitAttentionForAll(new SenseCode(SenseKey.UnitAttention, 0x3F, i));
        var got = k.TakeUnitAttentions(k[0]);
        Assert.Equal(VolumeReservations.MaxUnitAttentionsPerNexus, got.Count);
        Assert.Equal(0x3F, got[^1].Asc);
        Assert.Equal(VolumeReservations.MaxUnitAttentionsPerNexus + 2, got[^1].Ascq); // the newest is kept
    }

    [Fact]
    public void UnitAttentionForAllReachesRegistrantsWhosePathIsGone()
    {
        var k = new PrTestKit();
        Good(k.Register(k[2], 0, 9));
        var gone = k[2];
        k.Bound.RemoveAt(2);
        k.Pr.AddUnitAttentionForAll(SenseCode.CapacityDataHasChanged);
        Assert.Equal([SenseCode.CapacityDataHasChanged], k.TakeUnitAttentions(gone));
    }

    [Fact]
    public void UnitAttentionIsKeyedByIdentitySoANewIsidSeesIt()
    {
        var k = new PrTestKit();
        Good(k.Register(k[0], 0, 1));
        Good(k.Register(k[1], 0, 2));
        Good(k.Preempt(k[1], 2, 1, PersistentReservationType.WriteExclusive));
        Assert.True(k.Pr.TryTakeUnitAttention(PrTestKit.Nexus(0, isid: "400001371234"), out var code));
        Assert.Equal(SenseCode.RegistrationsPreempted, code);
    }

    [Fact]
    public void ClassificationOfServiceActionSpecialCases()
    {
        Assert.Equal(AccessClass.Allowed, ReservationAccess.Classify([0x9E, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], out bool p1));
        Assert.True(p1);
        Assert.Equal(AccessClass.Read, ReservationAccess.Classify([0x9E, 0x12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], out bool p2));
        Assert.False(p2);
        Assert.Equal(AccessClass.MetadataRead, ReservationAccess.Classify([0xA3, 0x0C, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], out _));
        Assert.Equal(AccessClass.Write, ReservationAccess.Classify([0x35, 0, 0, 0, 0, 0, 0, 0, 0, 0], out _));
        Assert.Equal(AccessClass.Write, ReservationAccess.Classify([0x1B], out _)); // truncated CDB: no START bit to trust
    }
}

public class NexusIdentityComparerTests
{
    [Theory]
    [InlineData("iqn.1994-05.com.example:NODE-Ä1", "iqn.1994-05.com.example:node-ä1")]
    [InlineData("IQN.1994-05.COM.EXAMPLE:N1", "iqn.1994-05.com.example:n1")]
    public void AgreesWithItNexusEqualityAndHashesEqualNamesAlike(string a, string b)
    {
        var t = new TargetPort(ProtocolId.Iscsi, "iqn.t,t,0x1", 1);
        var x = new ItNexus(new InitiatorPort(ProtocolId.Iscsi, a, "1"), t);
        var y = new ItNexus(new InitiatorPort(ProtocolId.Iscsi, b, "2"), t);
        Assert.Equal(x, y);
        Assert.True(NexusIdentityComparer.Instance.Equals(x, y));
        Assert.Equal(NexusIdentityComparer.Instance.GetHashCode(x), NexusIdentityComparer.Instance.GetHashCode(y));
        var otherPort = y with { Target = t with { RelativeTargetPortId = 2 } };
        Assert.False(NexusIdentityComparer.Instance.Equals(x, otherPort));
    }

    [Fact]
    public void NewPathObjectOfARegisteredIdentityIsFoundBeforeAndAfterPathsChanged()
    {
        var k = new PrTestKit();
        Good(k.Register(k[1], 0, 2));
        Good(k.Register(k[0], 0, 1));
        Good(k.Reserve(k[0], 1, PersistentReservationType.ExclusiveAccessRegistrantsOnly));
        var relogin = PrTestKit.Nexus(1, isid: "400001375555");
        k.Bound[1] = relogin;
        Assert.True(k.CanWrite(relogin));
        k.Pr.PathsChanged();
        Assert.True(k.CanWrite(relogin));
        Assert.False(k.CanRead(k[2]));
    }
}
