using TcmuSharedVolume.Reservations;
using TcmuSharedVolume.Scsi;
using static TcmuSharedVolume.Tests.Reservations.ResultAssert;

namespace TcmuSharedVolume.Tests.Reservations;

/// <summary>PR OUT validation and its order (docs/reservations.md §3), and unbound paths.</summary>
public class ValidationTests
{
    [Theory]
    [InlineData(0x08)] // REPLACE LOST RESERVATION: not implemented, RLR_C=0
    [InlineData(0x09)]
    [InlineData(0x1F)]
    public void UnknownServiceActionIsInvalidFieldInCdbEvenWithBadListLength(byte action)
    {
        var k = new PrTestKit();
        Check(k.ProutRaw(k[0], action, 1, PrTestKit.BasicList(0, 1)), SenseCode.InvalidFieldInCdb);
        Check(k.ProutRaw(k[0], action, 1, new byte[4]), SenseCode.InvalidFieldInCdb);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(23)]
    [InlineData(25)]
    [InlineData(32)]
    public void ListLengthOtherThan24IsParameterListLengthError(int length)
    {
        var k = new PrTestKit();
        var list = new byte[length];
        if (length >= 16) System.Buffers.Binary.BinaryPrimitives.WriteUInt64BigEndian(list.AsSpan(8), 1);
        Check(k.ProutRaw(k[0], 0x00, 0, list), SenseCode.ParameterListLengthError);
        Assert.Empty(k.ReadKeys().Keys);
    }

    [Fact]
    public void ListShorterThanTheCdbAnnouncesIsParameterListLengthError()
    {
        var k = new PrTestKit();
        Check(k.ProutRaw(k[0], 0x00, 0, PrTestKit.BasicList(0, 1)[..20], cdbLength: 24), SenseCode.ParameterListLengthError);
        Assert.Empty(k.ReadKeys().Keys);
    }

    [Theory]
    [InlineData(0x01)]
    [InlineData(0x03)]
    [InlineData(0x04)]
    [InlineData(0x06)]
    public void SpecIptOnAnythingButRegisterIsInvalidFieldInParameterList(byte action)
    {
        var k = new PrTestKit();
        Good(k.Register(k[0], 0, 1));
        Check(k.ProutRaw(k[0], action, 1, PrTestKit.BasicList(1, 1, specIpt: true)), SenseCode.InvalidFieldInParameterList);
    }

    [Fact]
    public void UnregisteredConflictWinsOverBadScopeAndType()
    {
        var k = new PrTestKit();
        Conflict(k.ProutRaw(k[0], 0x01, 0x02, PrTestKit.BasicList(0, 0), scope: 1));
    }

    [Fact]
    public void BadScopeWinsOverBadTypeAndBadKey()
    {
        var k = new PrTestKit();
        Good(k.Register(k[0], 0, 1));
        Check(k.ProutRaw(k[0], 0x01, 0x02, PrTestKit.BasicList(9, 0), scope: 2), SenseCode.InvalidFieldInCdb);
        Check(k.ProutRaw(k[0], 0x01, 0x02, PrTestKit.BasicList(9, 0)), SenseCode.InvalidFieldInCdb);
        Conflict(k.ProutRaw(k[0], 0x01, 0x01, PrTestKit.BasicList(9, 0)));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(2)]
    [InlineData(4)]
    [InlineData(9)]
    [InlineData(15)]
    public void ObsoleteAndReservedTypesAreRefused(byte type)
    {
        var k = new PrTestKit();
        Good(k.Register(k[0], 0, 1));
        Check(k.ProutRaw(k[0], 0x01, type, PrTestKit.BasicList(1, 0)), SenseCode.InvalidFieldInCdb);
        Assert.Null(k.ReadReservation());
    }

    [Fact]
    public void AllTargetPortsIsIgnoredOutsideRegister() // docs/reservations.md §3
    {
        var k = new PrTestKit();
        Good(k.Register(k[0], 0, 1));
        Good(k.ProutRaw(k[0], 0x01, 1, PrTestKit.BasicList(1, 0, allTgPt: true)));
        Assert.NotNull(k.ReadReservation());
    }

    [Theory]
    [InlineData(0x00)]
    [InlineData(0x01)]
    [InlineData(0x03)]
    [InlineData(0x06)]
    public void UnboundPathIsRefusedWithManualInterventionAndStateStaysIntact(byte action)
    {
        var k = new PrTestKit();
        Good(k.Register(k[0], 0, 1));
        uint gen = k.Generation;
        Check(k.ProutRaw(null, action, 1, PrTestKit.BasicList(0, 5)), VolumeReservations.UnboundPathSense);
        var reserve6 = k.Execute(null, [OperationCode.Reserve6, 0, 0, 0, 0, 0]);
        Check(reserve6, VolumeReservations.UnboundPathSense);
        Check(k.Execute(null, [OperationCode.Release6, 0, 0, 0, 0, 0]), VolumeReservations.UnboundPathSense);
        Assert.Equal([1UL], k.ReadKeys().Keys);
        Assert.Equal(gen, k.Generation);
        Assert.Null(k.Pr.State.Spc2Holder);
        Assert.False(k.Pr.TryTakeUnitAttention(null, out _));
    }

    [Fact]
    public void UnboundPathIsAnUnregisteredInitiatorForTheGate()
    {
        var k = new PrTestKit();
        Good(k.Register(k[0], 0, 1));
        Good(k.Reserve(k[0], 1, PersistentReservationType.WriteExclusiveRegistrantsOnly));
        Assert.True(k.CanRead(null));
        Assert.False(k.CanWrite(null));
    }

    [Fact]
    public void ShortCdbIsInvalidFieldInCdb()
    {
        var k = new PrTestKit();
        Check(k.Execute(k[0], [OperationCode.PersistentReserveOut, 0, 0, 0, 0, 0]), SenseCode.InvalidFieldInCdb);
        Check(k.Execute(k[0], [OperationCode.PersistentReserveIn, 0, 0, 0, 0, 0]), SenseCode.InvalidFieldInCdb);
    }
}
