using BenchmarkDotNet.Attributes;
using TcmuSharedVolume.Backends;
using TcmuSharedVolume.Reservations;
using TcmuSharedVolume.Scsi;
using TcmuSharedVolume.Volumes;

namespace TcmuSharedVolume.Benchmarks;

/// <summary>
/// <see cref="CommandSet.Execute"/> for commands that touch no medium: unit attention check,
/// command count, reservation gate and the command table's dispatch, with handlers that do
/// almost nothing, so that the dispatch is not hidden behind a syscall as in DataPathBenchmarks.
/// Target: 0 B allocated.
/// </summary>
[MemoryDiagnoser]
public class CommandDispatchBenchmarks
{
    private static readonly byte[] TestUnitReady = [0x00, 0, 0, 0, 0, 0];
    private static readonly byte[] ReadCapacity16 = [0x9E, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    private static readonly byte[] UnknownOpcode = [0xC0, 0, 0, 0, 0, 0];

    private string _directory = null!;
    private Volume _volume = null!;
    private VolumePath _path = null!;
    private readonly ScsiCommand _command = new();

    [GlobalSetup]
    public void Setup()
    {
        string root = Directory.Exists("/dev/shm") ? "/dev/shm" : Path.GetTempPath();
        _directory = Path.Combine(root, $"tsv-dispatch-{Environment.ProcessId}");
        Directory.CreateDirectory(_directory);
        string image = Path.Combine(_directory, "vol.img");
        using (var f = new FileStream(image, FileMode.Create, FileAccess.Write)) f.SetLength(1 << 20);
        _volume = new Volume(image, BackingStores.Open(image), 512, VolumeIdentity.FromBackingPath(image), new InMemoryReservationStore());
        _path = _volume.AddPath("bench", new ItNexus(new InitiatorPort(ProtocolId.Iscsi, "iqn.2026-11.bench:node1", "400001370000"),
            new TargetPort(ProtocolId.Iscsi, "iqn.2026-11.bench:target,t,0x0001", 1)));
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _volume.Dispose();
        Directory.Delete(_directory, recursive: true);
    }

    private ScsiStatus Execute(byte[] cdb)
    {
        _command.Reset();
        _command.SetCdb(cdb);
        CommandSet.Execute(_path, _command);
        return _command.Status;
    }

    [Benchmark(Baseline = true)]
    public ScsiStatus TestUnitReadyCommand() => Execute(TestUnitReady);

    /// <summary>An opcode with service actions: a second lookup.</summary>
    [Benchmark]
    public ScsiStatus ReadCapacity16Command() => Execute(ReadCapacity16);

    [Benchmark]
    public ScsiStatus UnknownOpcodeCommand() => Execute(UnknownOpcode);
}
