using System.Buffers.Binary;
using TcmuSharedVolume.Linux.Netlink;
using Xunit.Abstractions;

namespace TcmuSharedVolume.Tests.Fuzz;

/// <summary>
/// Netlink datagrams as a socket could deliver them: TCM-USER device events and nlctrl family
/// replies, truncated, with message or attribute lengths that lie, with nested attributes broken,
/// or random. The readers must never throw or hand out bytes past the datagram; a lie in a length
/// is reported (Malformed / a parse error), never read as a different, valid message.
/// </summary>
public sealed class NetlinkFuzzTests(ITestOutputHelper output)
{
    private const ushort Family = 0x1a;

    private sealed record Event(TcmuCommand Command, string Device, uint Minor, uint DeviceId, string? Cfg, ulong? Size, bool? Wce);

    private static Event RandomEvent(Random rng)
    {
        var command = (TcmuCommand)rng.Next(1, 4);
        string device = $"tcm-user/{rng.Next(10)}/vol{rng.Next(100)}-a/sharedvol//srv/d{rng.Next(1000)}.img";
        string? cfg = command == TcmuCommand.ReconfigDevice && rng.Next(2) == 0 ? $"sharedvol//srv/e{rng.Next(1000)}.img" : null;
        ulong? size = command == TcmuCommand.ReconfigDevice && cfg is null && rng.Next(2) == 0 ? (ulong)rng.NextInt64() : null;
        bool? wce = command == TcmuCommand.ReconfigDevice && cfg is null && size is null ? rng.Next(2) == 0 : null;
        return new Event(command, device, (uint)rng.Next(), (uint)rng.Next(), cfg, size, wce);
    }

    private static int Write(Span<byte> buffer, Event e, uint sequence)
    {
        var w = new NetlinkWriter(buffer);
        w.BeginMessage(Family, 0, sequence);
        w.GenlHeader((byte)e.Command, 2);
        w.PutString(TcmuAttr.Device, e.Device);
        w.PutU32(TcmuAttr.Minor, e.Minor);
        if (e.Cfg is not null) w.PutString(TcmuAttr.DevCfg, e.Cfg);
        if (e.Size is { } s) w.PutU64(TcmuAttr.DevSize, s);
        if (e.Wce is { } c) w.PutU8(TcmuAttr.WriteCache, c ? (byte)1 : (byte)0);
        w.PutU32(TcmuAttr.DeviceId, e.DeviceId);
        return w.EndMessage();
    }

    /// <summary>A CTRL_CMD_NEWFAMILY reply with a nested array of multicast groups.</summary>
    private static int WriteFamily(Span<byte> buffer, ushort id, string[] groups, uint sequence)
    {
        var w = new NetlinkWriter(buffer);
        w.BeginMessage(Nl.GenlIdCtrl, 0, sequence);
        w.GenlHeader(GenlController.CmdNewFamily, 2);
        w.PutU16(GenlController.AttrFamilyId, id);
        w.PutString(GenlController.AttrFamilyName, "TCM-USER");
        w.PutU32(GenlController.AttrVersion, 2);
        int array = w.BeginNested(GenlController.AttrMcastGroups);
        for (int g = 0; g < groups.Length; g++)
        {
            int entry = w.BeginNested((ushort)(g + 1));
            w.PutString(GenlController.AttrMcastGrpName, groups[g]);
            w.PutU32(GenlController.AttrMcastGrpId, (uint)(g + 10));
            w.EndNested(entry);
        }
        w.EndNested(array);
        return w.EndMessage();
    }

    /// <summary>What the daemon does with a datagram: every message, every event in it.</summary>
    private static (List<TcmuNetlinkEvent> Events, int Messages, bool Malformed, int Rejected) Consume(ReadOnlySpan<byte> datagram)
    {
        var events = new List<TcmuNetlinkEvent>();
        int messages = 0, rejected = 0;
        var reader = new NetlinkMessageReader(datagram);
        while (reader.TryRead(out var message))
        {
            messages++;
            // The payload is the message's bytes after its header, inside the datagram.
            Assert.True(message.Payload.Length <= datagram.Length - Nl.HeaderSize);
            message.TryGetError(out _);
            if (message.Type == Nl.GenlIdCtrl && GenlMessage.TryParse(message.Payload, out var genl))
                GenlController.TryParseFamily(genl.Attributes, out _);
            if (TcmuNetlinkEvent.TryParse(message.Payload, out var evt, out var error))
            {
                events.Add(evt);
                _ = evt.DevConfig; _ = evt.DeviceName; _ = evt.HbaIndex; _ = evt.ShouldReply;
            }
            else
            {
                Assert.False(string.IsNullOrEmpty(error));
                rejected++;
            }
        }
        return (events, messages, reader.Malformed, rejected);
    }

    /// <summary>Offsets of the attribute headers of the first message (after nlmsghdr + genlmsghdr).</summary>
    private static List<int> AttributeOffsets(ReadOnlySpan<byte> message)
    {
        var offsets = new List<int>();
        int at = Nl.HeaderSize + Nl.GenlHeaderSize;
        int end = (int)BinaryPrimitives.ReadUInt32LittleEndian(message);
        while (at + 4 <= end)
        {
            offsets.Add(at);
            at += Nl.Align(BinaryPrimitives.ReadUInt16LittleEndian(message[at..]));
        }
        return offsets;
    }

    [Fact]
    public void MalformedDatagramsAreRejectedCleanly_AndWellFormedOnesReadExactly()
    {
        int cases = FuzzBudget.Cases();
        var buffer = new byte[4096];
        FuzzBudget.Run(output, "netlink (NetlinkMessageReader, TcmuNetlinkEvent, GenlController)", cases, FuzzBudget.Seed(3303), (rng, i) =>
        {
            int kind = i % 7;
            if (kind == 6)
            {
                // A family reply whose nested multicast-group array is broken: never a throw, and
                // when the outer attribute lengths are right the family still parses.
                var groups = Enumerable.Range(0, rng.Next(0, 4)).Select(g => g == 0 ? "config" : $"g{rng.Next(100)}").ToArray();
                ushort id = (ushort)rng.Next(0x10, 0x100);
                int n = WriteFamily(buffer, id, groups, (uint)i);
                var d = buffer.AsSpan(0, n).ToArray();
                // id (8 bytes), name (4 + 12 bytes) and version (8 bytes) come before the array.
                int arrayAt = Nl.HeaderSize + Nl.GenlHeaderSize + 8 + 16 + 8;
                int pos = arrayAt + rng.Next(n - arrayAt);
                d[pos] = rng.Next(2) == 0 ? (byte)rng.Next(256) : (byte)(d[pos] ^ (1 << rng.Next(8)));
                var reader = new NetlinkMessageReader(d);
                Assert.True(reader.TryRead(out var m));
                Assert.True(GenlMessage.TryParse(m.Payload, out var g));
                // A changed array header re-frames what follows (as anything, even a second family id);
                // a change inside the array must leave the family's own attributes as they were.
                if (GenlController.TryParseFamily(g.Attributes, out var fam) && pos >= arrayAt + 4)
                {
                    Assert.Equal(id, fam.Id);
                    Assert.Equal("TCM-USER", fam.Name);
                }
                else if (pos >= arrayAt + 4) Assert.Fail("a change inside the nested array made the family unreadable");
                return;
            }

            int count = rng.Next(1, 4);
            var sent = new List<Event>();
            int length = 0;
            for (int m = 0; m < count; m++)
            {
                var e = RandomEvent(rng);
                sent.Add(e);
                length += Write(buffer.AsSpan(length), e, (uint)(i + m));
            }
            var datagram = buffer.AsSpan(0, length).ToArray();
            int firstLength = (int)BinaryPrimitives.ReadUInt32LittleEndian(datagram);

            switch (kind)
            {
                case 0: // as the kernel sends it
                {
                    var r = Consume(datagram);
                    Assert.False(r.Malformed);
                    Assert.Equal(0, r.Rejected);
                    Assert.Equal(sent.Select(e => new TcmuNetlinkEvent(e.Command, e.Device, e.Minor, e.DeviceId, e.Cfg, e.Size, e.Wce)), r.Events);
                    break;
                }
                case 1: // truncated inside the first message: nothing of it is read
                {
                    int cut = rng.Next(1, firstLength);
                    var r = Consume(datagram.AsSpan(0, cut));
                    Assert.True(r.Malformed);
                    Assert.Empty(r.Events);
                    Assert.Equal(0, r.Messages);
                    break;
                }
                case 2: // nlmsg_len that lies: longer than what is left, or shorter than a header
                {
                    uint lie = rng.Next(2) == 0 ? (uint)(datagram.Length + rng.Next(1, 1 << 20)) : (uint)rng.Next(0, Nl.HeaderSize);
                    BinaryPrimitives.WriteUInt32LittleEndian(datagram, lie);
                    var r = Consume(datagram);
                    Assert.True(r.Malformed);
                    Assert.Equal(0, r.Messages);
                    break;
                }
                case 3: // an attribute length that runs past its message, or below a header
                {
                    var offsets = AttributeOffsets(datagram);
                    int at = offsets[rng.Next(offsets.Count)];
                    int room = firstLength - at;
                    ushort lie = rng.Next(2) == 0 ? (ushort)rng.Next(room + 1, ushort.MaxValue + 1) : (ushort)rng.Next(0, 4);
                    BinaryPrimitives.WriteUInt16LittleEndian(datagram.AsSpan(at), lie);
                    var r = Consume(datagram);
                    Assert.DoesNotContain(r.Events, e => e.DeviceId == sent[0].DeviceId && e.Minor == sent[0].Minor);
                    Assert.True(r.Rejected >= 1);
                    break;
                }
                case 4: // random bytes changed anywhere
                {
                    for (int f = rng.Next(1, 6); f > 0; f--) datagram[rng.Next(datagram.Length)] = (byte)rng.Next(256);
                    Consume(datagram);
                    break;
                }
                default: // random datagrams, some with a plausible header
                {
                    var junk = new byte[rng.Next(0, 300)];
                    rng.NextBytes(junk);
                    if (junk.Length >= 16 && rng.Next(2) == 0)
                        BinaryPrimitives.WriteUInt32LittleEndian(junk, (uint)rng.Next(16, junk.Length + 1));
                    Consume(junk);
                    break;
                }
            }
        });
    }
}
