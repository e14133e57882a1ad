using System.Text;
using TcmuSharedVolume.Linux.Netlink;

namespace TcmuSharedVolume.Tests.Netlink;

/// <summary>
/// Byte layouts built by hand from the kernel structs (little-endian x86_64):
/// nlmsghdr {u32 len, u16 type, u16 flags, u32 seq, u32 pid}, genlmsghdr {u8 cmd, u8 version,
/// u16 reserved}, nlattr {u16 len, u16 type} with the payload padded to 4 bytes.
/// </summary>
public class NetlinkCodecTests
{
    private static byte[] Hex(string hex) => Convert.FromHexString(hex.Replace(" ", "", StringComparison.Ordinal));

    private static string Attr(ushort type, byte[] payload)
    {
        int len = 4 + payload.Length;
        var padded = new byte[(len + 3) & ~3];
        BitConverter.GetBytes((ushort)len).CopyTo(padded, 0);
        BitConverter.GetBytes(type).CopyTo(padded, 2);
        payload.CopyTo(padded, 4);
        return Convert.ToHexString(padded);
    }

    private static string Header(int len, ushort type, ushort flags, uint seq, uint pid = 0) =>
        Convert.ToHexString([.. BitConverter.GetBytes((uint)len), .. BitConverter.GetBytes(type), .. BitConverter.GetBytes(flags),
            .. BitConverter.GetBytes(seq), .. BitConverter.GetBytes(pid)]);

    private static string Str(string s) => Convert.ToHexString(Encoding.ASCII.GetBytes(s + "\0"));

    [Fact]
    public void SetFeaturesMatchesTheKernelLayout()
    {
        var buffer = new byte[64];
        int n = TcmuNetlinkMessages.WriteSetFeatures(buffer, familyId: 0x1a, sequence: 7);
        Assert.Equal(Hex(
            "1C000000 1A00 0100 07000000 00000000" + // nlmsghdr: 28 bytes, family 0x1a, NLM_F_REQUEST, seq 7
            "07 02 0000" +                           // genl: SET_FEATURES, version 2
            "0500 0900 01 000000"),                  // SUPP_KERN_CMD_REPLY u8 = 1, padded
            buffer[..n]);
    }

    [Fact]
    public void ReplyCarriesStatusAndDeviceIdWithoutAck()
    {
        var buffer = new byte[64];
        int n = TcmuNetlinkMessages.WriteReply(buffer, 0x1a, 9, TcmuCommand.AddedDeviceDone, status: -19, deviceId: 5);
        Assert.Equal(Hex(
            "24000000 1A00 0100 09000000 00000000" +
            "04 02 0000" +
            "0800 0700 EDFFFFFF" +   // CMD_STATUS s32 = -ENODEV
            "0800 0800 05000000"),   // DEVICE_ID u32 = 5
            buffer[..n]);
    }

    [Fact]
    public void ReplyRejectsAnEventCommandAndAPositiveStatus()
    {
        var buffer = new byte[64];
        Assert.Throws<ArgumentOutOfRangeException>(() => TcmuNetlinkMessages.WriteReply(buffer, 1, 1, TcmuCommand.AddedDevice, 0, 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => TcmuNetlinkMessages.WriteReply(buffer, 1, 1, TcmuCommand.RemovedDeviceDone, 5, 1));
    }

    [Fact]
    public void GetFamilyAsksTheControllerByName()
    {
        var buffer = new byte[64];
        int n = GenlController.WriteGetFamily(buffer, "TCM-USER", 3);
        Assert.Equal(Hex(
            "24000000 1000 0100 03000000 00000000" + // to GENL_ID_CTRL
            "03 01 0000" +                           // CTRL_CMD_GETFAMILY
            "0D00 0200" + Str("TCM-USER") + "000000"), // CTRL_ATTR_FAMILY_NAME, 13 bytes + 3 pad
            buffer[..n]);
    }

    [Fact]
    public void ParsesTheControllersFamilyAnswerWithNestedGroups()
    {
        // NEWFAMILY as ctrl_fill_info lays it out: id, name, version, hdrsize, maxattr, ops, mcast groups.
        var ops = Attr(1, Hex(Attr(1, BitConverter.GetBytes(7u)) + Attr(2, BitConverter.GetBytes(0x1u))));
        var grp1 = Attr(1, Hex(Attr(2, BitConverter.GetBytes(11u)) + Attr(1, Encoding.ASCII.GetBytes("config\0"))));
        var grp2 = Attr(2, Hex(Attr(1, Encoding.ASCII.GetBytes("other\0")) + Attr(2, BitConverter.GetBytes(12u))));
        var body = Attr(1, BitConverter.GetBytes((ushort)0x1a)) + Attr(2, Encoding.ASCII.GetBytes("TCM-USER\0"))
                   + Attr(3, BitConverter.GetBytes(2u)) + Attr(4, BitConverter.GetBytes(0u)) + Attr(5, BitConverter.GetBytes(9u))
                   + Attr(6 | 0x8000, Hex(ops)) + Attr(7 | 0x8000, Hex(grp1 + grp2)); // NLA_F_NESTED must be masked
        Assert.True(GenlController.TryParseFamily(Hex(body), out var family));
        Assert.Equal(0x1a, family.Id);
        Assert.Equal("TCM-USER", family.Name);
        Assert.Equal(2u, family.Version);
        Assert.Equal(new Dictionary<string, uint> { ["config"] = 11, ["other"] = 12 }, family.MulticastGroups);
    }

    [Fact]
    public void AFamilyAnswerWithoutIdIsRefused() =>
        Assert.False(GenlController.TryParseFamily(Hex(Attr(2, Encoding.ASCII.GetBytes("X\0"))), out _));

    private static byte[] Event(byte command, params string[] attrs) => Hex("0" + command.ToString("X") + " 02 0000" + string.Concat(attrs));

    [Fact]
    public void ParsesAnAddedDeviceEvent()
    {
        var payload = Event(1,
            Attr(TcmuAttr.Device, Encoding.ASCII.GetBytes("tcm-user/1/vol1-a/sharedvol//srv/v.img;size=1G\0")),
            Attr(TcmuAttr.Minor, BitConverter.GetBytes(3u)),
            Attr(TcmuAttr.DeviceId, BitConverter.GetBytes(42u)));
        Assert.True(TcmuNetlinkEvent.TryParse(payload, out var evt, out var error), error);
        Assert.Equal(new TcmuNetlinkEvent(TcmuCommand.AddedDevice, "tcm-user/1/vol1-a/sharedvol//srv/v.img;size=1G", 3, 42), evt);
        Assert.Equal(TcmuCommand.AddedDeviceDone, evt.ReplyCommand);
        Assert.Equal(1, evt.HbaIndex);
        Assert.Equal("vol1-a", evt.DeviceName);
        Assert.Equal("sharedvol//srv/v.img;size=1G", evt.DevConfig);
        Assert.True(evt.ShouldReply);
    }

    [Fact]
    public void ParsesReconfigEventsIncludingThe64BitPad()
    {
        const string dev = "tcm-user/2/d/sharedvol//x";
        var size = Event(3, Attr(TcmuAttr.Device, Encoding.ASCII.GetBytes(dev + "\0")), Attr(TcmuAttr.Minor, BitConverter.GetBytes(0u)),
            Attr(TcmuAttr.DeviceId, BitConverter.GetBytes(1u)), Attr(TcmuAttr.Pad, []), Attr(TcmuAttr.DevSize, BitConverter.GetBytes(10UL << 30)));
        Assert.True(TcmuNetlinkEvent.TryParse(size, out var e1, out _));
        Assert.Equal(10UL << 30, e1.NewDevSize);
        Assert.Equal(TcmuCommand.ReconfigDeviceDone, e1.ReplyCommand);

        var wce = Event(3, Attr(TcmuAttr.Device, Encoding.ASCII.GetBytes(dev + "\0")), Attr(TcmuAttr.Minor, BitConverter.GetBytes(0u)),
            Attr(TcmuAttr.DeviceId, BitConverter.GetBytes(1u)), Attr(TcmuAttr.WriteCache, [1]));
        Assert.True(TcmuNetlinkEvent.TryParse(wce, out var e2, out _));
        Assert.True(e2.NewWriteCache);

        var cfg = Event(3, Attr(TcmuAttr.Device, Encoding.ASCII.GetBytes(dev + "\0")), Attr(TcmuAttr.Minor, BitConverter.GetBytes(0u)),
            Attr(TcmuAttr.DeviceId, BitConverter.GetBytes(1u)), Attr(TcmuAttr.DevCfg, Encoding.ASCII.GetBytes("sharedvol//y\0")));
        Assert.True(TcmuNetlinkEvent.TryParse(cfg, out var e3, out _));
        Assert.Equal("sharedvol//y", e3.NewDevConfig);
    }

    [Fact]
    public void OtherHandlersDevicesGetNoReply()
    {
        var payload = Event(2, Attr(TcmuAttr.Device, Encoding.ASCII.GetBytes("tcm-user/1/x/file//srv/v.img\0")),
            Attr(TcmuAttr.Minor, BitConverter.GetBytes(0u)), Attr(TcmuAttr.DeviceId, BitConverter.GetBytes(9u)));
        Assert.True(TcmuNetlinkEvent.TryParse(payload, out var evt, out _));
        Assert.Equal(TcmuCommand.RemovedDevice, evt.Command);
        Assert.False(evt.ShouldReply);
        Assert.False(new TcmuNetlinkEvent(TcmuCommand.AddedDevice, "tcm-user/1/nocfg", 0, 0).ShouldReply);
    }

    [Fact]
    public void RejectsIncompleteOrForeignMessages()
    {
        Assert.False(TcmuNetlinkEvent.TryParse(Hex("01"), out _, out var e0));
        Assert.Contains("genl header", e0);
        Assert.False(TcmuNetlinkEvent.TryParse(Event(4), out _, out var e1));
        Assert.Contains("not a device event", e1);
        Assert.False(TcmuNetlinkEvent.TryParse(Event(1, Attr(TcmuAttr.Device, Encoding.ASCII.GetBytes("tcm-user/1/a/sharedvol//x\0")),
            Attr(TcmuAttr.Minor, BitConverter.GetBytes(0u))), out _, out var e2));
        Assert.Equal("AddedDevice without DEVICE_ID", e2);
        // An attribute claiming more bytes than the message has.
        Assert.False(TcmuNetlinkEvent.TryParse(Event(1, "4000 0100 41414141"), out _, out var e3));
        Assert.Contains("malformed", e3);
    }

    [Fact]
    public void ReadsSeveralMessagesAndErrorsFromOneDatagram()
    {
        var datagram = Hex(
            Header(24, 0x1a, 0, 0) + "01 02 0000" + Attr(TcmuAttr.Minor, BitConverter.GetBytes(1u)).Substring(0, 8) +
            Header(36, 2, 0, 77) + "FEFFFFFF" + Header(16, 0x10, 1, 77)); // NLMSG_ERROR -ENOENT quoting our request
        var reader = new NetlinkMessageReader(datagram);
        Assert.True(reader.TryRead(out var m1));
        Assert.Equal(0x1a, m1.Type);
        Assert.Equal(8, m1.Payload.Length);
        Assert.False(m1.TryGetError(out _));
        Assert.True(reader.TryRead(out var m2));
        Assert.Equal(77u, m2.Sequence);
        Assert.True(m2.TryGetError(out var err));
        Assert.Equal(-2, err);
        Assert.False(reader.TryRead(out _));
        Assert.False(reader.Malformed);
    }

    [Fact]
    public void ATruncatedDatagramIsMalformed()
    {
        var reader = new NetlinkMessageReader(Hex(Header(40, 0x1a, 0, 0) + "01020000"));
        Assert.False(reader.TryRead(out _));
        Assert.True(reader.Malformed);
    }

    [Fact]
    public void NestedAttributesGetTheirLengthAndFlag()
    {
        var buffer = new byte[64];
        var w = new NetlinkWriter(buffer);
        w.BeginMessage(0x20, 1, 1);
        int nest = w.BeginNested(7);
        w.PutU32(2, 0xAABBCCDD);
        w.PutString(1, "ab");
        w.EndNested(nest);
        int n = w.EndMessage();
        Assert.Equal(Hex(Header(36, 0x20, 1, 1) + "1400 0780" + "0800 0200 DDCCBBAA" + "0700 0100 616200 00"), buffer[..n]);

        var attrs = new NetlinkAttributeReader(buffer.AsSpan(16, n - 16));
        Assert.True(attrs.TryRead(out var type, out var value));
        Assert.Equal(7, type);
        var inner = new NetlinkAttributeReader(value);
        Assert.True(inner.TryRead(out var t1, out var v1) && NetlinkAttributeReader.TryU32(v1, out var u) && u == 0xAABBCCDD && t1 == 2);
        Assert.True(inner.TryRead(out var t2, out var v2));
        Assert.Equal((1, "ab"), (t2, NetlinkAttributeReader.String(v2)));
        Assert.False(inner.TryRead(out _, out _));
    }

    [Fact]
    public void WriterRefusesToOverrunItsBuffer()
    {
        var buffer = new byte[20];
        Assert.Throws<NetlinkBufferTooSmallException>(() =>
        {
            var w = new NetlinkWriter(buffer);
            w.BeginMessage(1, 1, 1);
            w.PutU64(1, 1);
        });
    }

    [Fact]
    public void RandomAttributesRoundTrip()
    {
        var random = new Random(1234);
        var buffer = new byte[8192];
        for (int round = 0; round < 200; round++)
        {
            var attrs = Enumerable.Range(0, random.Next(0, 12))
                .Select(_ => ((ushort)random.Next(1, 0x3FFF), Enumerable.Range(0, random.Next(0, 40)).Select(_ => (byte)random.Next(256)).ToArray()))
                .ToList();
            var w = new NetlinkWriter(buffer);
            w.BeginMessage(0x1a, 1, (uint)round);
            w.GenlHeader(1, 2);
            foreach (var (t, v) in attrs) w.Put(t, v);
            int n = w.EndMessage();
            Assert.Equal(0, n % 4);

            var messages = new NetlinkMessageReader(buffer.AsSpan(0, n));
            Assert.True(messages.TryRead(out var m));
            Assert.Equal((uint)round, m.Sequence);
            Assert.True(GenlMessage.TryParse(m.Payload, out var g));
            var reader = new NetlinkAttributeReader(g.Attributes);
            foreach (var (t, v) in attrs)
            {
                Assert.True(reader.TryRead(out var rt, out var rv));
                Assert.Equal(t, rt);
                Assert.Equal(v, rv.ToArray());
            }
            Assert.False(reader.TryRead(out _, out _));
            Assert.False(reader.Malformed);
        }
    }
}
