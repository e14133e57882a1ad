using System.Buffers.Binary;
using System.Collections.Concurrent;
using TcmuSharedVolume.Interop;
using TcmuSharedVolume.Linux.Tcmu;
using TcmuSharedVolume.Scsi;
using TcmuSharedVolume.Simulation;

namespace TcmuSharedVolume.Tests.Tcmu;

/// <summary>An eventfd standing in for /dev/uioN: the simulator signals it when it queues work.</summary>
internal sealed unsafe class EventFdSource : IRingEventSource, IDisposable
{
    public EventFdSource()
    {
        Fd = Libc.eventfd(0, Libc.EFD_NONBLOCK | Libc.EFD_CLOEXEC);
        if (Fd < 0) throw new IOException("eventfd failed");
    }

    public int Fd { get; private set; }

    public void Signal()
    {
        ulong one = 1;
        Libc.write(Fd, &one, sizeof(ulong));
    }

    public void Dispose()
    {
        if (Fd >= 0) Libc.close(Fd);
        Fd = -1;
    }
}

/// <summary>Simulated kernel + its event fd + the ring over it.</summary>
internal sealed unsafe class SimulatedDevice : IDisposable
{
    public SimulatedDevice(string name, int cmdrSize = 16 * 1024 - 128, int dataBlocks = 32)
    {
        Sim = new RingSimulator(cmdrSize: cmdrSize, dataBlocks: dataBlocks);
        Source = new EventFdSource();
        Sim.Notified += () =>
        {
            if (!Quiet) Source.Signal();
        };
        Notifier = new SimulatorNotifier(Sim);
        Ring = new TcmuRing(Sim.Map, Sim.MapLength, Notifier, name);
    }

    /// <summary>Hold back the "uio event" so that several submissions arrive as one batch.</summary>
    public volatile bool Quiet;

    public RingSimulator Sim { get; }
    public EventFdSource Source { get; }
    public SimulatorNotifier Notifier { get; }
    public TcmuRing Ring { get; }

    public void Dispose()
    {
        Ring.Dispose();
        Source.Dispose();
        Sim.Dispose();
    }
}

/// <summary>
/// Answers READ(10) with bytes derived from the LBA and checks WRITE(10) data against the same
/// rule, so a command that got another command's buffer or CDB shows up as a wrong answer.
/// </summary>
internal sealed class PatternExecutor : ICommandExecutor
{
    public int Executed;
    public int Running;
    public Action<ScsiCommand>? BeforeExecute;
    public Func<ScsiCommand, bool>? Throw;
    public ConcurrentQueue<(TmrType Type, ushort[] Ids)> Tmrs { get; } = new();

    public static byte PatternByte(uint lba, long offset) => (byte)(lba * 31 + offset * 7 + 1);

    public static byte[] PatternFor(uint lba, int length)
    {
        var data = new byte[length];
        for (int i = 0; i < length; i++) data[i] = PatternByte(lba, i);
        return data;
    }

    public bool Execute(ScsiCommand command)
    {
        Interlocked.Increment(ref Running);
        try
        {
            BeforeExecute?.Invoke(command);
            if (Throw?.Invoke(command) == true) throw new InvalidOperationException("executor failure");
            uint lba = BinaryPrimitives.ReadUInt32BigEndian(command.Cdb.Slice(2));
            var expected = PatternFor(lba, (int)command.Data.Length);
            if (command.OperationCode == 0x28)
            {
                command.Data.CopyFrom(0, expected);
                command.Good();
            }
            else
            {
                var got = new byte[command.Data.Length];
                command.Data.CopyTo(0, got);
                if (got.AsSpan().SequenceEqual(expected)) command.Good();
                else command.CheckCondition(SenseCode.MiscompareDuringVerifyOperation);
            }
        }
        finally
        {
            Interlocked.Decrement(ref Running);
            Interlocked.Increment(ref Executed);
        }
        return true;
    }

    public void TaskManagement(TmrType type, ReadOnlySpan<ushort> commandIds) => Tmrs.Enqueue((type, commandIds.ToArray()));
}

internal static class Wait
{
    public static bool Until(Func<bool> condition, int milliseconds = 10_000)
    {
        var deadline = DateTime.UtcNow.AddMilliseconds(milliseconds);
        while (!condition())
        {
            if (DateTime.UtcNow > deadline) return false;
            Thread.Sleep(2);
        }
        return true;
    }
}
