using FsCheck;
using FsCheck.Fluent;
using TcmuSharedVolume.Scsi;
using TcmuSharedVolume.Volumes;
using static TcmuSharedVolume.Tests.Scsi.ScsiFixture;

namespace TcmuSharedVolume.Tests.Scsi;

/// <summary>
/// Whatever an initiator sends — any opcode, any bytes, any buffer length — the command set
/// answers GOOD or CHECK CONDITION with sense that parses, and never throws.
/// </summary>
public sealed class RandomCdbPropertyTests : IDisposable
{
    private readonly ScsiFixture _f = new();
    private readonly VolumePath _path;

    public RandomCdbPropertyTests()
    {
        var volume = _f.CreateVolume(1 << 20);
        _path = volume.AddPath("p", Nexus("iqn.2024-01.test:a", 1));
    }

    public void Dispose() => _f.Dispose();

    public sealed record Input(byte[] Cdb, int DataLength, int Segments, bool Descriptor, byte Fill)
    {
        public override string ToString() => $"cdb={Convert.ToHexString(Cdb)} data={DataLength}/{Segments} desc={Descriptor}";
    }

    private static readonly byte[] Known =
    [
        0x00, 0x03, 0x08, 0x0A, 0x12, 0x15, 0x1A, 0x1B, 0x1D, 0x1E, 0x25, 0x28, 0x2A, 0x2E, 0x2F, 0x35,
        0x41, 0x42, 0x55, 0x5A, 0x88, 0x89, 0x8A, 0x8E, 0x8F, 0x91, 0x93, 0x9E, 0xA3, 0xA8, 0xAA, 0xAE, 0xAF,
    ];

    private static Gen<Input> Inputs()
    {
        var op = Gen.Frequency((4, Gen.Elements(Known)), (1, Gen.Choose(0, 255).Select(i => (byte)i)));
        // Mostly zero and small bytes, so that LBAs and lengths often land inside the volume.
        var small = Gen.Frequency((4, Gen.Constant(0)), (2, Gen.Choose(0, 7)), (1, Gen.Choose(0, 255))).Select(i => (byte)i);
        return
            from o in op
            from length in Gen.Frequency((6, Gen.Constant(CdbReader.LengthOfGroup(o))), (1, Gen.Choose(1, 32)))
            from rest in Gen.ArrayOf(small, Math.Max(0, (length == 0 ? 6 : length) - 1))
            from dataLength in Gen.Frequency((3, Gen.Choose(0, 4096)), (1, Gen.Choose(0, 70000)))
            from segments in Gen.Choose(1, 9)
            from desc in Gen.Elements(false, true)
            from fill in Gen.Frequency((1, Gen.Constant(0)), (3, Gen.Choose(0, 255)))
            select new Input([o, .. rest], dataLength, segments, desc, (byte)fill);
    }

    private bool Holds(Input input)
    {
        using var data = new NativeData(input.DataLength, input.Segments);
        if (input.Fill != 0)
        {
            var bytes = new byte[input.DataLength];
            Array.Fill(bytes, input.Fill);
            if (bytes.Length > 8) bytes[1] = 0; // sometimes makes a sane UNMAP/MODE SELECT header
            data.Buffer.CopyFrom(0, bytes);
        }
        var r = Run(_path, input.Cdb, data, input.Descriptor);
        if (r.DataInLength > input.DataLength) return false;
        switch (r.Status)
        {
            case ScsiStatus.Good:
            case ScsiStatus.ReservationConflict: // random PR OUT / RESERVE CDBs reach the reservation table
                return r.Sense.Length == 0;
            case ScsiStatus.CheckCondition:
                if (r.Sense.Length < 8) return false;
                if ((r.Sense[0] & 0x7F) != (input.Descriptor ? 0x72 : 0x70)) return false;
                var code = SenseData.Parse(r.Sense);
                return code.Key is SenseKey.IllegalRequest or SenseKey.Miscompare or SenseKey.MediumError or SenseKey.DataProtect
                    or SenseKey.UnitAttention or SenseKey.NotReady;
            default:
                return false;
        }
    }

    [Fact]
    public void EveryRandomCdbGetsGoodOrCheckConditionWithParseableSense()
    {
        var property = Prop.ForAll(Inputs().ToArbitrary(), Holds);
        Check.One(Config.QuickThrowOnFailure.WithMaxTest(3000), property);
    }
}
