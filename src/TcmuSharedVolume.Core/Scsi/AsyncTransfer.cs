using System.Diagnostics;
using TcmuSharedVolume.Backends;
using TcmuSharedVolume.Volumes;

namespace TcmuSharedVolume.Scsi;

/// <summary>A READ or WRITE that its handler left for <see cref="CommandSet"/> to start without a thread.</summary>
internal readonly record struct StoreTransfer(long Offset, long Length, bool Write, bool Fua)
{
    public bool IsSet => Length > 0;
}

/// <summary>
/// A READ or WRITE whose store finishes it on its own thread (<see cref="IAsyncBackingStore"/>,
/// docs/architecture.md §2). <see cref="Start"/> runs where the command passed the gate; the
/// store's <see cref="StoreCompleted"/> gives the command the status the synchronous handler
/// would have given it, ends its count on the path (so PREEMPT AND ABORT waits for it until
/// here), records it and hands it back to the transport. One per pooled command, kept with it.
/// </summary>
internal sealed class AsyncTransfer(ScsiCommand command) : IStoreCompletion
{
    private VolumePath _path = null!;
    private long _length;
    private bool _write;
    private bool _fua;

    /// <summary>
    /// Starts the command's deferred transfer. True: it is in the store and finishes through
    /// <see cref="ScsiCommand.Completion"/>, maybe already has; the caller must not touch the
    /// command again. False: it could not start and is finished here (its status is set).
    /// </summary>
    public static bool Start(VolumePath path, ScsiCommand command)
    {
        var transfer = command.Deferred;
        command.Deferred = default;
        var volume = path.Volume;
        var store = (IAsyncBackingStore)volume.Store;
        var self = command.Async ??= new AsyncTransfer(command);
        self._path = path;
        self._length = transfer.Length;
        self._write = transfer.Write;
        self._fua = transfer.Fua;
        if (!transfer.Write)
        {
            try
            {
                store.StartRead(command.Data, transfer.Offset, self);
            }
            catch (BackingStoreException e)
            {
                BlockCommands.Failed(volume, command, e, write: false);
                return false;
            }
            return true;
        }

        volume.BeginAsyncWrite();
        bool started = false;
        try
        {
            store.StartWrite(command.Data, transfer.Offset, transfer.Fua, self);
            started = true;
        }
        catch (BackingStoreException e)
        {
            BlockCommands.WriteFailed(volume, command, e, transfer.Fua);
        }
        finally
        {
            if (!started) volume.EndAsyncWrite();
        }
        return started;
    }

    public void StoreCompleted(BackingStoreException? error)
    {
        var path = _path;
        var volume = path.Volume;
        if (_write)
        {
            volume.EndAsyncWrite();
            if (error is not null) BlockCommands.WriteFailed(volume, command, error, _fua);
            else if (BlockCommands.DurableUnlessLatched(volume, command, _fua)) command.Good();
        }
        else
        {
            if (error is not null) BlockCommands.Failed(volume, command, error, write: false);
            else command.Good(_length);
        }
        path.EndCommand();
        if (command.ReceivedTimestamp != 0)
            path.Metrics.Record(command, Stopwatch.GetTimestamp() - command.ReceivedTimestamp);
        command.Completion!.Finished(command);
    }
}
