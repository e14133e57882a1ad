using TcmuSharedVolume.Linux.Tcmu;
using TcmuSharedVolume.Simulation;
using TcmuSharedVolume.Tests.EndToEnd;

namespace TcmuSharedVolume.Tests.Tcmu;

/// <summary>A notifier whose kick waits at a gate: a loop thread that completed a command but has
/// not yet kicked the ring, which touches the mapping (cmd_tail) and the uio fd.</summary>
internal sealed class GatedNotifier(RingSimulator simulator) : IRingNotifier
{
    private readonly ManualResetEventSlim _open = new(true);

    public ManualResetEventSlim Entered { get; } = new();

    public void Close() => _open.Reset();

    public void Open() => _open.Set();

    public void Kick()
    {
        Entered.Set();
        _open.Wait(TimeSpan.FromSeconds(60));
        simulator.Kick();
    }
}

public sealed class RingRemoveTests
{
    /// <summary>
    /// RingEventLoop.Remove says "idle, free the mapping" only when no loop thread can touch the
    /// ring again. A command's run slot is given back before its thread kicks the ring, so "no
    /// command running" alone is not enough: the kick would write into an unmapped ring.
    /// </summary>
    [Fact]
    public unsafe void RemoveIsNotIdleWhileACompletedCommandIsStillBeingKicked()
    {
        using var sim = new RingSimulator(cmdrSize: 16 * 1024 - 128, dataBlocks: 32);
        using var source = new EventFdSource();
        sim.Notified += source.Signal;
        var notifier = new GatedNotifier(sim);
        var ring = new TcmuRing(sim.Map, sim.MapLength, notifier, "gated");
        using (var loop = new RingEventLoop(workerCount: 2))
        {
            loop.Add(ring, source, new PatternExecutor());
            notifier.Close();
            var read = sim.Submit(Cdb.Read10(3, 1), dataInLength: 512);
            Assert.True(notifier.Entered.Wait(TimeSpan.FromSeconds(30)), "the command was never completed");

            Assert.False(loop.Remove(ring, TimeSpan.Zero), "the ring was reported idle while a loop thread was kicking it");
            Assert.False(loop.Remove(ring, TimeSpan.Zero), "asking again must not change that");

            notifier.Open();
            Assert.True(Wait.Until(() => loop.Remove(ring, TimeSpan.Zero)), "the ring never became idle");
            Assert.Equal(0, sim.ForTicket(read.Ticket)!.Status);
        }
        ring.Dispose();
    }
}
