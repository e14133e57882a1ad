using TcmuSharedVolume.Scsi;

namespace TcmuSharedVolume.Linux.Tcmu;

/// <summary>FIFO of commands that can also give up one by tag (for ABORT TASK); no allocation
/// once grown to the ring's peak.</summary>
internal sealed class CommandQueue(int capacity)
{
    private ScsiCommand?[] _items = new ScsiCommand?[Math.Max(4, capacity)];
    private int _head;

    public int Count { get; private set; }

    public void Enqueue(ScsiCommand command)
    {
        if (Count == _items.Length)
        {
            var bigger = new ScsiCommand?[_items.Length * 2];
            for (int i = 0; i < Count; i++) bigger[i] = _items[(_head + i) % _items.Length];
            _items = bigger;
            _head = 0;
        }
        _items[(_head + Count) % _items.Length] = command;
        Count++;
    }

    public ScsiCommand Dequeue()
    {
        var command = _items[_head]!;
        _items[_head] = null;
        _head = (_head + 1) % _items.Length;
        Count--;
        return command;
    }

    public bool TryRemove(int tag, out ScsiCommand? command)
    {
        for (int i = 0; i < Count; i++)
        {
            int at = (_head + i) % _items.Length;
            if (_items[at]!.TransportTag != tag) continue;
            command = _items[at];
            for (int j = i; j < Count - 1; j++)
                _items[(_head + j) % _items.Length] = _items[(_head + j + 1) % _items.Length];
            _items[(_head + Count - 1) % _items.Length] = null;
            Count--;
            return true;
        }
        command = null;
        return false;
    }
}
