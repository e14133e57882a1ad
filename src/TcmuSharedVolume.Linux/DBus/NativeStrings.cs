using System.Runtime.InteropServices;
using System.Text;

namespace TcmuSharedVolume.Linux.DBus;

/// <summary>
/// NUL-terminated UTF-8 strings and tables in native memory that sd-bus keeps pointers to for
/// the life of the connection (vtables, member names). Freed all at once.
/// </summary>
internal sealed unsafe class NativeArena : IDisposable
{
    private readonly List<nint> _blocks = [];

    public byte* Utf8(string text) => Bytes(Encoding.UTF8.GetBytes(text + "\0"));

    /// <summary>Parameter names the way SD_BUS_PARAM concatenates them: "a\0b\0" then a final empty name.</summary>
    public byte* Names(params string[] names) => Utf8(string.Concat(names.Select(n => n + "\0")));

    public byte* Bytes(ReadOnlySpan<byte> bytes)
    {
        var p = (byte*)Alloc((nuint)bytes.Length);
        bytes.CopyTo(new Span<byte>(p, bytes.Length));
        return p;
    }

    public void* Alloc(nuint size)
    {
        var p = NativeMemory.AllocZeroed(size == 0 ? 1 : size);
        _blocks.Add((nint)p);
        return p;
    }

    public void Dispose()
    {
        foreach (var p in _blocks) NativeMemory.Free((void*)p);
        _blocks.Clear();
    }
}
