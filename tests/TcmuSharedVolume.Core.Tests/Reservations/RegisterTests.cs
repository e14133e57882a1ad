using TcmuSharedVolume.Reservations;
using TcmuSharedVolume.Scsi;
using static TcmuSharedVolume.Tests.Reservations.ResultAssert;

namespace TcmuSharedVolume.Tests.Reservations;

/// <summary>REGISTER / REGISTER AND IGNORE EXISTING KEY, docs/reservations.md §4 table, row by row.</summary>
public class RegisterTests
{
    [Fact]
    public void UnregisteredRegisterWithNonZeroReservationKeyConflicts()
    {
        var k = new PrTestKit();
        Conflict(k.Register(k[0], rk: 5, sark: 6));
        Assert.Empty(k.ReadKeys().Keys);
        Assert.Equal(0u, k.Generation);
    }

    [Fact]
    public void UnregisteredRegisterWithZeroKeysIsANoOpWithoutGenerationChange()
    {
        var k = new PrTestKit();
        Good(k.Register(k[0], 0, 0));
        Good(k.RegisterAndIgnore(k[0], 0));
        Assert.Empty(k.ReadKeys().Keys);
        Assert.Equal(0u, k.Generation);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void UnregisteredNexusRegistersServiceActionKey(bool ignore)
    {
        var k = new PrTestKit();
        Good(ignore ? k.RegisterAndIgnore(k[0], 0xABCD, rk: 0x999) : k.Register(k[0], 0, 0xABCD));
        var (gen, keys) = k.ReadKeys();
        Assert.Equal([0xABCDUL], keys);
        Assert.Equal(1u, gen);
    }

    [Fact]
    public void RegisteredRegisterWithWrongKeyConflicts()
    {
        var k = new PrTestKit();
        Good(k.Register(k[0], 0, 1));
        Conflict(k.Register(k[0], 0, 2)); // libiscsi prout_reregister_key_fails
        Conflict(k.Register(k[0], 7, 2));
        Assert.Equal([1UL], k.ReadKeys().Keys);
        Assert.Equal(1u, k.Generation);
    }

    [Fact]
    public void ReregisterReplacesKeyAndReservationFollowsTheNexus()
    {
        var k = new PrTestKit();
        Good(k.Register(k[0], 0, 1));
        Good(k.Reserve(k[0], 1, PersistentReservationType.WriteExclusive));
        Good(k.Register(k[0], 1, 2));
        Assert.Equal((2UL, PersistentReservationType.WriteExclusive), k.ReadReservation());
        Good(k.RegisterAndIgnore(k[0], 3));
        Assert.Equal((3UL, PersistentReservationType.WriteExclusive), k.ReadReservation());
        Assert.Equal(3u, k.Generation);
    }

    [Fact]
    public void UnregisterIncrementsGeneration()
    {
        var k = new PrTestKit();
        Good(k.Register(k[0], 0, 1));
        Good(k.Register(k[0], 1, 0));
        var (gen, keys) = k.ReadKeys();
        Assert.Empty(keys);
        Assert.Equal(2u, gen); // docs/reservations.md §1: LIO forgets this one
    }

    [Fact]
    public void DuplicateKeysAcrossNexusesAreAllReported()
    {
        var k = new PrTestKit();
        Good(k.Register(k[0], 0, 7));
        Good(k.Register(k[1], 0, 7));
        Assert.Equal([7UL, 7UL], k.ReadKeys().Keys);
    }

    [Fact]
    public void NewIsidOfTheSameInitiatorKeepsTheRegistration()
    {
        var k = new PrTestKit();
        Good(k.Register(k[0], 0, 7));
        var relogin = PrTestKit.Nexus(0, isid: "400001370999");
        k.Bound[0] = relogin;
        Assert.Equal([7UL], k.ReadKeys().Keys);
        Good(k.Reserve(relogin, 7, PersistentReservationType.WriteExclusive));
        Assert.True(k.CanWrite(relogin));
    }

    [Fact]
    public void HolderUnregisteringWeroReleasesAndTellsOtherRegistrants()
    {
        var k = new PrTestKit();
        Good(k.Register(k[0], 0, 1));
        Good(k.Register(k[1], 0, 2));
        Good(k.Reserve(k[0], 1, PersistentReservationType.WriteExclusiveRegistrantsOnly));
        Good(k.Register(k[0], 1, 0));
        Assert.Null(k.ReadReservation());
        Assert.Equal([SenseCode.ReservationsReleased], k.TakeUnitAttentions(k[1]));
        Assert.Empty(k.TakeUnitAttentions(k[0]));
        Assert.Empty(k.TakeUnitAttentions(k[2]));
    }

    [Fact]
    public void HolderUnregisteringWeReleasesWithoutUnitAttention()
    {
        var k = new PrTestKit();
        Good(k.Register(k[0], 0, 1));
        Good(k.Register(k[1], 0, 2));
        Good(k.Reserve(k[0], 1, PersistentReservationType.WriteExclusive));
        Good(k.Register(k[0], 1, 0));
        Assert.Null(k.ReadReservation());
        Assert.Empty(k.TakeUnitAttentions(k[1]));
    }

    [Theory]
    [InlineData(PersistentReservationType.WriteExclusiveAllRegistrants)]
    [InlineData(PersistentReservationType.ExclusiveAccessAllRegistrants)]
    public void AllRegistrantsReservationStaysUntilTheLastRegistrantLeaves(PersistentReservationType type)
    {
        var k = new PrTestKit();
        Good(k.Register(k[0], 0, 1));
        Good(k.Register(k[1], 0, 2));
        Good(k.Reserve(k[0], 1, type));
        Good(k.Register(k[0], 1, 0));
        Assert.Equal((0UL, type), k.ReadReservation());
        Assert.True(k.CanWrite(k[1]));
        Good(k.Register(k[1], 2, 0));
        Assert.Null(k.ReadReservation());
    }

    [Fact]
    public void AptplFollowsTheLastRegisterAndIsReportedAsPtplA()
    {
        var k = new PrTestKit();
        Good(k.Register(k[0], 0, 1, aptpl: true));
        Assert.Equal(0x01, k.PrIn(k[0], 0x02).Data[3] & 0x01);
        Good(k.Register(k[1], 0, 2, aptpl: false));
        Assert.Equal(0x00, k.PrIn(k[0], 0x02).Data[3] & 0x01);
    }

    [Fact]
    public void AllTargetPortsRegistersEveryPortTheInitiatorReachesAndUnregistersThemTogether()
    {
        var k = new PrTestKit(nexuses: 2, targetPorts: 2); // [0]=n0p1 [1]=n1p1 [2]=n0p2 [3]=n1p2
        Good(k.Register(k[0], 0, 9, allTgPt: true));
        var (gen, keys) = k.ReadKeys();
        Assert.Equal([9UL, 9UL], keys);
        Assert.Equal(1u, gen); // once per command (docs/reservations.md §1)
        Assert.True(k.Pr.State.IndexOf(k[2]) >= 0);
        Assert.True(k.Pr.State.IndexOf(k[1]) < 0);
        Good(k.Register(k[2], 9, 10)); // key change through the other port moves both copies
        Assert.Equal([10UL, 10UL], k.ReadKeys().Keys);
        Good(k.Register(k[0], 10, 0));
        Assert.Empty(k.ReadKeys().Keys);
    }

    [Fact]
    public void SpecIptRegistersIssuerAndEveryNamedInitiatorIscsiBothFormats()
    {
        var k = new PrTestKit(nexuses: 4);
        var list = PrTestKit.SpecIptList(0x55, false,
            PrTestKit.IscsiTid(PrTestKit.InitiatorName(1)),
            PrTestKit.IscsiTid(PrTestKit.InitiatorName(2).ToUpperInvariant(), "400001370002"));
        Good(k.ProutRaw(k[0], 0x00, 0, list));
        var (gen, keys) = k.ReadKeys();
        Assert.Equal([0x55UL, 0x55UL, 0x55UL], keys);
        Assert.Equal(1u, gen);
        Assert.True(k.Pr.State.IndexOf(k[3]) < 0);
    }

    [Fact]
    public void SpecIptAcceptsSasAndFibreChannelTransportIds()
    {
        var k = new PrTestKit(nexuses: 1);
        var sas = new ItNexus(new InitiatorPort(ProtocolId.Sas, "naa.500140512345678a"), new TargetPort(ProtocolId.Sas, "naa.5001405aaaaaaaaa", 1));
        var fc = new ItNexus(new InitiatorPort(ProtocolId.FibreChannel, "21:00:00:24:ff:3d:bf:5e"), new TargetPort(ProtocolId.Iscsi, "x", 1));
        var fcIssuer = new ItNexus(new InitiatorPort(ProtocolId.FibreChannel, "21:00:00:24:ff:00:00:01"), fc.Target);
        var sasIssuer = new ItNexus(new InitiatorPort(ProtocolId.Sas, "naa.5001405100000001"), sas.Target);
        k.Bound.AddRange([sas, fc, fcIssuer, sasIssuer]);
        Good(k.ProutRaw(sasIssuer, 0, 0, PrTestKit.SpecIptList(1, false, PrTestKit.AddressTid(ProtocolId.Sas, 0x500140512345678a))));
        Good(k.ProutRaw(fcIssuer, 0, 0, PrTestKit.SpecIptList(2, false, PrTestKit.AddressTid(ProtocolId.FibreChannel, 0x21000024ff3dbf5e))));
        Assert.True(k.Pr.State.IndexOf(sas) >= 0);
        Assert.True(k.Pr.State.IndexOf(fc) >= 0);
    }

    [Fact]
    public void SpecIptIsAllOrNothingWhenOneInitiatorIsUnknown()
    {
        var k = new PrTestKit(nexuses: 2);
        var list = PrTestKit.SpecIptList(0x55, false,
            PrTestKit.IscsiTid(PrTestKit.InitiatorName(1)),
            PrTestKit.IscsiTid("iqn.1994-05.com.example:stranger"));
        Check(k.ProutRaw(k[0], 0x00, 0, list), SenseCode.InvalidFieldInParameterList);
        Assert.Empty(k.ReadKeys().Keys);
        Assert.Equal(0u, k.Generation);
    }

    [Theory]
    [InlineData(0x85)] // format 10b
    [InlineData(0x07)] // unknown protocol
    public void SpecIptWithMalformedTransportIdIsInvalidFieldInParameterList(byte firstByte)
    {
        var k = new PrTestKit(nexuses: 2);
        var tid = PrTestKit.IscsiTid(PrTestKit.InitiatorName(1));
        tid[0] = firstByte;
        Check(k.ProutRaw(k[0], 0x00, 0, PrTestKit.SpecIptList(1, false, tid)), SenseCode.InvalidFieldInParameterList);
    }

    [Fact]
    public void SpecIptIscsiFormat01WithoutIsidSeparatorIsInvalid()
    {
        var k = new PrTestKit(nexuses: 2);
        var tid = PrTestKit.IscsiTid(PrTestKit.InitiatorName(1));
        tid[0] = 0x45;
        Check(k.ProutRaw(k[0], 0x00, 0, PrTestKit.SpecIptList(1, false, tid)), SenseCode.InvalidFieldInParameterList);
    }

    [Fact]
    public void SpecIptIscsiAdditionalLengthNotMultipleOfFourIsInvalid()
    {
        var k = new PrTestKit(nexuses: 2);
        var tid = PrTestKit.IscsiTid(PrTestKit.InitiatorName(1));
        tid[3] -= 1;
        Array.Resize(ref tid, tid.Length - 1);
        Check(k.ProutRaw(k[0], 0x00, 0, PrTestKit.SpecIptList(1, false, tid)), SenseCode.InvalidFieldInParameterList);
    }

    [Fact]
    public void SpecIptTransportIdLengthDisagreeingWithListLengthIsInvalidField()
    {
        var k = new PrTestKit(nexuses: 2);
        var list = PrTestKit.SpecIptList(1, false, PrTestKit.IscsiTid(PrTestKit.InitiatorName(1)));
        list[27] += 4;
        Check(k.ProutRaw(k[0], 0x00, 0, list), SenseCode.InvalidFieldInParameterList);
        Check(k.ProutRaw(k[0], 0x00, 0, list[..26]), SenseCode.ParameterListLengthError); // no room for the length
    }

    [Fact]
    public void SpecIptFromRegisteredNexusIsInvalidFieldInParameterList()
    {
        var k = new PrTestKit(nexuses: 2);
        Good(k.Register(k[0], 0, 1));
        var list = PrTestKit.SpecIptList(1, false, PrTestKit.IscsiTid(PrTestKit.InitiatorName(1)));
        System.Buffers.Binary.BinaryPrimitives.WriteUInt64BigEndian(list, 1);
        Check(k.ProutRaw(k[0], 0x00, 0, list), SenseCode.InvalidFieldInParameterList);
    }

    [Fact]
    public void RegistrationTableFullIsInsufficientRegistrationResources()
    {
        var k = new PrTestKit(nexuses: 3);
        k.Pr.MaxRegistrations = 2;
        Good(k.Register(k[0], 0, 1));
        Good(k.Register(k[1], 0, 1));
        Check(k.Register(k[2], 0, 1), SenseCode.InsufficientRegistrationResources);
        Assert.Equal(2, k.ReadKeys().Keys.Length);
        Assert.Equal(2u, k.Generation);
    }
}
