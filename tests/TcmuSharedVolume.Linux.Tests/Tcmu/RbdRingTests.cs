using TcmuSharedVolume.Backends;
using TcmuSharedVolume.Linux.Tcmu;
using TcmuSharedVolume.Reservations;
using TcmuSharedVolume.Scsi;
using TcmuSharedVolume.Simulation;
using TcmuSharedVolume.Tests.Backends.Rbd;
using TcmuSharedVolume.Tests.EndToEnd;
using TcmuSharedVolume.Volumes;
using static TcmuSharedVolume.Tests.Tcmu.RingTestKit;

namespace TcmuSharedVolume.Tests.Tcmu;

/// <summary>
/// An RBD volume served by the event loop over a simulated ring, as the daemon serves it: READ
/// and WRITE finish from librbd's completion callback, 32 at a time with 2 workers, against the
/// real one-node Ceph of scripts/ceph/start.sh.
/// </summary>
[Collection(CephCollection.Name)]
public sealed class RbdRingTests(CephCluster ceph)
{
    private static readonly TimeSpan Long = TimeSpan.FromSeconds(60);

    [Fact]
    public void ThirtyTwoCommandsAtOnceWithTwoWorkersKeepTheirData()
    {
        string image = ceph.CreateImage("16M");
        var location = RbdLocation.Create(CephCluster.Pool, image, ceph.ConfPath);
        using var volume = new Volume(location.Path, RbdStore.Open(location), 512, VolumeIdentity.FromBackingPath(location.Path), new InMemoryReservationStore());
        var path = volume.AddPath("user_1/rbd", TwoPathRig.Nexus("iqn.2026-12.test:node1", 1));
        using var device = new SimulatedDevice("rbd", cmdrSize: 64 * 1024 - 128, dataBlocks: 128);
        var loop = new RingEventLoop(workerCount: 2);
        try
        {
            loop.Add(device.Ring, device.Source, new VolumePathExecutor(path));
            long done = 0;
            for (int round = 0; round < 4; round++)
            {
                // 32 writes at once, then 32 reads of the same blocks.
                var lbas = Enumerable.Range(0, 32).Select(i => (uint)((round * 32 + i) * 8 * 3 % 32768)).ToArray();
                var writes = Batch(device, lbas, write: true);
                done += 32;
                Assert.True(device.Sim.WaitForCompletions(done, Long), $"{device.Sim.CompletedCount} of {done}");
                foreach (var (s, _) in writes) Assert.Equal((byte)ScsiStatus.Good, device.Sim.ForTicket(s.Ticket)!.Status);
                var reads = Batch(device, lbas, write: false);
                done += 32;
                Assert.True(device.Sim.WaitForCompletions(done, Long));
                foreach (var (s, lba) in reads)
                {
                    var c = device.Sim.ForTicket(s.Ticket)!;
                    Assert.Equal((byte)ScsiStatus.Good, c.Status);
                    Assert.Equal(PatternExecutor.PatternFor(lba, 4096), c.DataIn);
                }
            }
            Assert.Null(device.Sim.BrokenReason);
            Assert.True(loop.Remove(device.Ring, Long));
            Assert.Equal(0, path.InFlight);
        }
        finally
        {
            loop.Dispose();
        }
    }

    private static List<(RingSimulator.Submitted S, uint Lba)> Batch(SimulatedDevice device, uint[] lbas, bool write)
    {
        var submitted = new List<(RingSimulator.Submitted, uint)>();
        device.Quiet = true;
        for (int i = 0; i < lbas.Length; i++)
        {
            uint lba = lbas[i];
            var s = write
                ? device.Sim.Submit(Write10(lba, 8), dataOut: PatternExecutor.PatternFor(lba, 4096), fragment: i % 3 == 0)
                : device.Sim.Submit(Read10(lba, 8), dataInLength: 4096, fragment: i % 4 == 0);
            submitted.Add((s, lba));
        }
        device.Quiet = false;
        device.Source.Signal();
        return submitted;
    }
}
