using System.Buffers.Binary;
using System.Runtime.InteropServices;
using BenchmarkDotNet.Attributes;
using TcmuSharedVolume.Backends;
using TcmuSharedVolume.Reservations;
using TcmuSharedVolume.Scsi;
using TcmuSharedVolume.Volumes;

namespace TcmuSharedVolume.Benchmarks;

/// <summary>
/// Cost of the reservation gate per command: 128 registrations and a WERO reservation, the
/// state a fenced Pacemaker cluster runs in. Target: under 50 ns, 0 B allocated.
/// <para>Table: <c>local</c>, one host's table (in memory, as with a file); <c>rados</c>, the
/// table several hosts share (<see cref="RbdReservationStore"/> on an image of the one-node Ceph
/// of scripts/ceph/start.sh), whose gate must read the cached copy and do no I/O, so it costs
/// the same.</para>
/// </summary>
[MemoryDiagnoser]
public class ReservationGateBenchmarks
{
    private const string RadosImage = "tsv-gate-bench";

    [Params("local", "rados")]
    public string Table { get; set; } = "local";

    private sealed class NoDrain : ICommandDrain
    {
        public bool DrainCommands(IReadOnlyCollection<ItNexus> nexuses, TimeSpan timeout) => true;
    }

    private static readonly byte[] Read10 = [0x28, 0, 0, 0, 0, 0, 0, 0, 8, 0];
    private static readonly byte[] Write10 = [0x2A, 0, 0, 0, 0, 0, 0, 0, 8, 0];
    private static readonly byte[] SyncCache10 = [0x35, 0, 0, 0, 0, 0, 0, 0, 0, 0];

    private VolumeReservations _pr = null!;
    private ItNexus _holder = null!;
    private ItNexus _registered = null!;
    private ItNexus _unregistered = null!;
    private ItNexus _registeredOtherObject = null!;

    private static ItNexus Nexus(int i, string isid = "400001370000") =>
        new(new InitiatorPort(ProtocolId.Iscsi, $"iqn.1994-05.com.example:node{i}", isid),
            new TargetPort(ProtocolId.Iscsi, "iqn.2003-01.org.linux-iscsi.bench:vol,t,0x0001", 1));

    [GlobalSetup]
    public unsafe void Setup()
    {
        var bound = Enumerable.Range(0, 129).Select(i => Nexus(i)).ToArray();
        if (Table == "rados")
        {
            string conf = Ceph.Start();
            Ceph.RecreateImage(conf, RadosImage, "16M");
            _rbd = RbdStore.Open(RbdLocation.Create("rbd", RadosImage, conf));
            _cluster = new RbdReservationStore(_rbd);
            _pr = new VolumeReservations(_cluster, () => bound, new NoDrain());
        }
        else
        {
            _pr = new VolumeReservations(new InMemoryReservationStore(), () => bound, new NoDrain());
        }
        var mem = (byte*)NativeMemory.AllocZeroed(24);
        var iov = (IoVec*)NativeMemory.Alloc((nuint)sizeof(IoVec));
        *iov = new IoVec((nint)mem, 24);
        var command = new ScsiCommand();
        void ProutOut(ItNexus n, byte action, byte type, ulong rk, ulong sark)
        {
            var list = new Span<byte>(mem, 24);
            list.Clear();
            BinaryPrimitives.WriteUInt64BigEndian(list, rk);
            BinaryPrimitives.WriteUInt64BigEndian(list[8..], sark);
            command.Reset();
            command.SetCdb([0x5F, action, type, 0, 0, 0, 0, 0, 24, 0]);
            command.Data = new DataBuffer(iov, 1, 24);
            _pr.Execute(n, command);
            if (command.Status != ScsiStatus.Good) throw new InvalidOperationException($"setup PR OUT failed: {command.Status}");
        }
        for (int i = 0; i < 128; i++) ProutOut(bound[i], 0x00, 0, 0, (ulong)(0x1000 + i));
        ProutOut(bound[0], 0x01, 0x05, 0x1000, 0);
        _holder = bound[0];
        _registered = bound[64];
        _unregistered = bound[128];
        _registeredOtherObject = Nexus(64, "400001379999");
    }

    private RbdStore? _rbd;
    private RbdReservationStore? _cluster;

    [GlobalCleanup]
    public void Cleanup()
    {
        _cluster?.Dispose();
        _rbd?.Dispose();
    }

    [Benchmark(Baseline = true)]
    public bool HolderWrite() => _pr.IsAllowed(_holder, Write10);

    [Benchmark]
    public bool RegisteredWrite() => _pr.IsAllowed(_registered, Write10);

    [Benchmark]
    public bool UnregisteredWrite() => _pr.IsAllowed(_unregistered, Write10);

    [Benchmark]
    public bool UnregisteredRead() => _pr.IsAllowed(_unregistered, Read10);

    [Benchmark]
    public bool UnregisteredSynchronizeCache() => _pr.IsAllowed(_unregistered, SyncCache10);

    /// <summary>A nexus object the snapshot has not seen (new path, same identity): value lookup.</summary>
    [Benchmark]
    public bool RegisteredWriteByValue() => _pr.IsAllowed(_registeredOtherObject, Write10);

    [Benchmark]
    public bool NoUnitAttentionPending() => _pr.TryTakeUnitAttention(_registered, out _);
}
