using System.Buffers.Binary;
using TcmuSharedVolume.Scsi;
using TcmuSharedVolume.Tests.Scsi;
using TcmuSharedVolume.Volumes;
using static TcmuSharedVolume.Tests.Scsi.ScsiFixture;

namespace TcmuSharedVolume.Tests.Volumes;

/// <summary>Resets as the initiators see them (daemon restart, LUN and target resets) and the
/// MAXIMUM TRANSFER LENGTH that a volume's paths' data areas allow.</summary>
public sealed class ResetAndTransferLimitTests : IDisposable
{
    private readonly ScsiFixture _f = new();
    private readonly Volume _volume;
    private readonly VolumePath _a, _b;
    private static readonly byte[] Tur = new byte[6];
    private static readonly byte[] Reserve6 = [OperationCode.Reserve6, 0, 0, 0, 0, 0];

    public ResetAndTransferLimitTests()
    {
        _volume = _f.CreateVolume();
        _a = _volume.AddPath("vol-a", Nexus("iqn.2024-01.test:a", 1));
        _b = _volume.AddPath("vol-b", Nexus("iqn.2024-01.test:b", 2));
    }

    public void Dispose() => _f.Dispose();

    // ---- daemon restart: power-on unit attention ----

    [Fact]
    public void AnAdoptedPathReportsAPowerOnOnceAheadOfOtherUnitAttentions()
    {
        _volume.Reservations.AddUnitAttentionForAll(SenseCode.CapacityDataHasChanged);
        _a.PowerOnOccurred();
        Run(_a, Tur).AssertCheck(SenseCode.PowerOnResetOrBusDeviceResetOccurred);
        Run(_a, Tur).AssertCheck(SenseCode.CapacityDataHasChanged);
        Run(_a, Tur).AssertGood();
        // The path that was not adopted at start-up has only its own.
        Run(_b, Tur).AssertCheck(SenseCode.CapacityDataHasChanged);
        Run(_b, Tur).AssertGood();
    }

    [Fact]
    public void AnAdoptedPathBoundLaterGetsThePowerOnWhenItBinds()
    {
        var late = _volume.AddPath("vol-c", null);
        late.PowerOnOccurred();
        Run(late, Tur).AssertGood(); // unbound: no identity to report to
        Assert.True(late.Bind(Nexus("iqn.2024-01.test:c", 3)));
        Run(late, Tur).AssertCheck(SenseCode.PowerOnResetOrBusDeviceResetOccurred);
        Run(late, Tur).AssertGood();
        Assert.True(late.Bind(Nexus("iqn.2024-01.test:c", 3))); // binding again delivers nothing
        Run(late, Tur).AssertGood();
    }

    [Fact]
    public void RequestSenseConsumesThePowerOn()
    {
        _b.PowerOnOccurred();
        var r = In(_b, [OperationCode.RequestSense, 0, 0, 0, 252, 0], 252);
        r.AssertGood();
        Assert.Equal(SenseCode.PowerOnResetOrBusDeviceResetOccurred, SenseData.Parse(r.DataIn));
        Run(_b, Tur).AssertGood();
    }

    // ---- LUN and target resets ----

    [Fact]
    public void ALogicalUnitResetReleasesSpc2AndTellsTheOtherNexusesButNotTheIssuer()
    {
        var c = _volume.AddPath("vol-c", Nexus("iqn.2024-01.test:c", 3));
        Run(_a, Reserve6).AssertGood();
        Assert.Equal(ScsiStatus.ReservationConflict, Out(_b, Cdb.Write10(0, 1), new byte[BlockSize]).Status);

        _volume.Reservations.ResetOccurred(_b.Nexus, SenseCode.BusDeviceResetFunctionOccurred);

        Assert.Null(_volume.Reservations.Spc2Holder);
        Run(_a, Tur).AssertCheck(SenseCode.BusDeviceResetFunctionOccurred); // the holder learns it lost RESERVE
        Run(c, Tur).AssertCheck(SenseCode.BusDeviceResetFunctionOccurred);
        Out(_b, Cdb.Write10(0, 1), new byte[BlockSize]).AssertGood(); // the kernel told the issuer already
        Run(_a, Tur).AssertGood();
    }

    // ---- MAXIMUM TRANSFER LENGTH ----

    private static uint VpdMaxTransferBlocks(VolumePath p)
    {
        var r = In(p, Cdb.Inquiry(true, 0xB0, 64), 64);
        r.AssertGood();
        return BinaryPrimitives.ReadUInt32BigEndian(r.DataIn.AsSpan(8));
    }

    [Fact]
    public void TheSmallestDataAreaOfTheVolumesPathsSetsTheMaximumTransferLength()
    {
        // A data area larger than the ceiling changes nothing.
        Assert.False(_a.LimitTransferLength(1L << 30));
        Assert.Equal((uint)(Volume.MaxTransferCeilingBytes / BlockSize), VpdMaxTransferBlocks(_b));

        // A path whose ring carries 1 MiB (and a few bytes, not a whole block) lowers it for all.
        Assert.True(_b.LimitTransferLength((1 << 20) + 100));
        uint max = VpdMaxTransferBlocks(_a);
        Assert.Equal((uint)((1 << 20) / BlockSize), max);
        // The other nexus may have read the higher value: it is told to read it again.
        Run(_a, Tur).AssertCheck(SenseCode.InquiryDataHasChanged);
        Run(_b, Tur).AssertGood();
        In(_a, Cdb.Read10(0, (ushort)max), (int)max * BlockSize).AssertGood();
        var r = In(_a, Cdb.Read10(0, (ushort)(max + 1)), (int)(max + 1) * BlockSize);
        r.AssertCheck(SenseCode.InvalidFieldInCdb);

        // A path joining later can only lower it.
        var c = _volume.AddPath("vol-c", Nexus("iqn.2024-01.test:c", 3));
        Assert.False(c.LimitTransferLength(4 << 20));
        Assert.Equal(max, VpdMaxTransferBlocks(c));
        Run(_a, Tur).AssertGood();
    }
}
