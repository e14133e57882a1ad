using System.Buffers.Binary;
using System.Text;
using TcmuSharedVolume.Simulation;
using TcmuSharedVolume.Tests.Tcmu;
using static TcmuSharedVolume.Tests.EndToEnd.TwoPathRig;

namespace TcmuSharedVolume.Tests.EndToEnd;

/// <summary>One volume, two initiators: both see the same bytes and the same disk.</summary>
public class DataAndIdentityTests
{
    private static unsafe uint IovCount(SimulatedDevice device, RingSimulator.Submitted s)
        => *(uint*)(device.Sim.Map + RingSimulator.MailboxSize + s.RingOffset + 8);

    [Fact]
    public void DataWrittenThroughOnePathReadsBackIdenticalThroughTheOther()
    {
        // A 4 KiB-page ring (3968-byte command ring) wraps every few dozen entries.
        using var rig = new TwoPathRig(cmdrSize: 4096 - 128, dataBlocks: 160);
        var random = new Random(20261122);
        long blocks = rig.Volume.BlockCount;
        int[] sizes = [1, 8, 9, 64, 127, 512]; // 512 B up to 256 KiB, aligned and not
        int wrapsA = 0, wrapsB = 0;
        uint maxIovs = 0;
        for (int round = 0; round < 12; round++)
        {
            foreach (int n in sizes)
            {
                ulong lba = (ulong)random.NextInt64(0, blocks - n);
                var data = new byte[n * BlockSize];
                random.NextBytes(data);
                bool fragment = (round + n) % 2 == 0;
                bool sixteen = round % 3 == 0;

                uint headA = rig.A.Sim.Head;
                var w = Submit(rig.A, sixteen ? Cdb.Write16(lba, (uint)n) : Cdb.Write10((uint)lba, (ushort)n), dataOut: data, fragment: fragment);
                maxIovs = Math.Max(maxIovs, IovCount(rig.A, w));
                if (rig.A.Sim.Head < headA) wrapsA++;
                CompletionAssert.Good(Await(rig.A, w), $"WRITE of {n} blocks at {lba} via node1");

                uint headB = rig.B.Sim.Head;
                var r = Submit(rig.B, sixteen ? Cdb.Read10((uint)lba, (ushort)n) : Cdb.Read16(lba, (uint)n), dataIn: data.Length, fragment: !fragment);
                maxIovs = Math.Max(maxIovs, IovCount(rig.B, r));
                if (rig.B.Sim.Head < headB) wrapsB++;
                var read = Await(rig.B, r);
                CompletionAssert.Good(read, $"READ of {n} blocks at {lba} via node2");
                Assert.True(data.AsSpan().SequenceEqual(read.DataIn), $"{n} blocks at LBA {lba}: node2 read other bytes than node1 wrote");
            }
        }
        Assert.True(wrapsA >= 2 && wrapsB >= 2, $"the rings wrapped {wrapsA} and {wrapsB} times; the test needs wrap-around");
        Assert.True(maxIovs >= 4, $"at most {maxIovs} iovecs per command; the test needs scattered data");
        Assert.Null(rig.A.Sim.BrokenReason);
        Assert.Null(rig.B.Sim.BrokenReason);
    }

    [Fact]
    public void QueuedWritesOnOnePathAreAllVisibleOnTheOtherOnceComplete()
    {
        using var rig = new TwoPathRig(dataBlocks: 128);
        const int depth = 24;
        const ushort n = 8; // 4 KiB each
        var data = new byte[depth][];
        var random = new Random(7);
        // Queue the whole batch before the loop sees any of it: the commands run concurrently.
        rig.A.Quiet = true;
        var writes = new RingSimulator.Submitted[depth];
        for (int i = 0; i < depth; i++)
        {
            data[i] = new byte[n * BlockSize];
            random.NextBytes(data[i]);
            writes[i] = Submit(rig.A, Cdb.Write10((uint)(1000 + i * n), n), dataOut: data[i], fragment: i % 2 == 0);
        }
        rig.A.Quiet = false;
        rig.A.Source.Signal();
        foreach (var w in writes) CompletionAssert.Good(Await(rig.A, w));

        rig.B.Quiet = true;
        var reads = new RingSimulator.Submitted[depth];
        for (int i = 0; i < depth; i++)
            reads[i] = Submit(rig.B, Cdb.Read10((uint)(1000 + i * n), n), dataIn: n * BlockSize, fragment: i % 3 == 0);
        rig.B.Quiet = false;
        rig.B.Source.Signal();
        for (int i = 0; i < depth; i++)
        {
            var r = Await(rig.B, reads[i]);
            CompletionAssert.Good(r);
            Assert.Equal(data[i], r.DataIn);
        }
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void BothPathsReportTheSameDisk(bool sharedTargetPort)
    {
        using var rig = new TwoPathRig(sharedTargetPort: sharedTargetPort);
        byte[] Page(SimulatedDevice d, byte[] cdb)
        {
            var c = Run(d, cdb, dataIn: 255);
            CompletionAssert.Good(c);
            Assert.NotNull(c.DataIn);
            int length = cdb[1] == 0 ? 5 + c.DataIn[4] : 4 + BinaryPrimitives.ReadUInt16BigEndian(c.DataIn.AsSpan(2));
            return c.DataIn.AsSpan(0, length).ToArray();
        }

        var stdA = Page(rig.A, Cdb.StandardInquiry(255));
        var stdB = Page(rig.B, Cdb.StandardInquiry(255));
        Assert.Equal(stdA, stdB);
        Assert.Equal("TSV", Encoding.ASCII.GetString(stdA, 8, 8).TrimEnd());

        // VPD 80h: the unit serial, the same on every path and the volume's, not the backstore's.
        var serialA = Page(rig.A, Cdb.Inquiry(0x80));
        var serialB = Page(rig.B, Cdb.Inquiry(0x80));
        Assert.Equal(serialA, serialB);
        Assert.Equal(rig.Volume.Identity.UnitSerial, Encoding.ASCII.GetString(serialA, 4, serialA.Length - 4).TrimEnd());

        // VPD 83h: multipath and clusters match paths by the logical unit's designators.
        var idA = Page(rig.A, Cdb.Inquiry(0x83));
        var idB = Page(rig.B, Cdb.Inquiry(0x83));
        var luA = Designators(idA).Where(d => d.Association == 0).ToArray();
        var luB = Designators(idB).Where(d => d.Association == 0).ToArray();
        Assert.NotEmpty(luA);
        Assert.Equal(luA.Select(d => Convert.ToHexString(d.Bytes)), luB.Select(d => Convert.ToHexString(d.Bytes)));
        var naa = luA.Single(d => d.Type == 3);
        Assert.Equal(rig.Volume.Identity.NaaLocallyAssigned, BinaryPrimitives.ReadUInt64BigEndian(naa.Bytes.AsSpan(4)));

        // The relative target port designator names the port the command came through.
        ushort Rtpi(byte[] page) => BinaryPrimitives.ReadUInt16BigEndian(Designators(page).Single(d => d.Association == 1 && d.Type == 4).Bytes.AsSpan(6));
        Assert.Equal(rig.Node1.Target.RelativeTargetPortId, Rtpi(idA));
        Assert.Equal(rig.Node2.Target.RelativeTargetPortId, Rtpi(idB));
        if (sharedTargetPort) Assert.Equal(idA, idB);
        else Assert.NotEqual(Rtpi(idA), Rtpi(idB));
    }

    private static IEnumerable<(int Association, int Type, byte[] Bytes)> Designators(byte[] page)
    {
        for (int at = 4; at + 4 <= page.Length; at += 4 + page[at + 3])
            yield return ((page[at + 1] >> 4) & 0x3, page[at + 1] & 0xF, page.AsSpan(at, 4 + page[at + 3]).ToArray());
    }
}
